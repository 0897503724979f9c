// The "Log" page: every request that went through the proxy, filterable, exportable.
#pragma once

#include <QDateTime>
#include <QHash>
#include <QWidget>

class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QTableView;

namespace keyrelay {

class LogFilterModel;
class LogModel;
struct RequestRecord;

class LogPage : public QWidget
{
    Q_OBJECT
public:
    explicit LogPage(LogModel *model, QWidget *parent = nullptr);
    ~LogPage() override;

    QTableView *view() const { return m_view; }
    LogFilterModel *filterModel() const { return m_filter; }
    QLineEdit *filterEdit() const { return m_filterEdit; }
    QComboBox *statusFilter() const { return m_statusFilter; }
    bool isFollowing() const { return m_follow; }

    /// The selected rows (as shown) as tab-separated text; also put on the clipboard by copySelection().
    QString selectionText() const;
    void copySelection();
    /// Writes the rows that pass the current filter as CSV. Returns false with @p error on failure.
    bool exportCsv(const QString &path, QString *error) const;
    /// The website of the selected row, if that request was refused because of its origin.
    QString selectedBlockedOrigin() const;
    QPushButton *allowWebsiteButton() const { return m_allowWebsite; }
    /// The line under the table: how many requests (and key events) the log holds.
    QString countText() const;
    /// The confirmation shown above the table after "Allow" (empty when none).
    QString noticeText() const;

public Q_SLOTS:
    /// @p origin was added to the allowed websites: says so on this page, and its blocked requests so
    /// far no longer offer "Allow".
    void websiteAllowed(const QString &origin);

Q_SIGNALS:
    /// The user chose "Allow this website" on a blocked request.
    void allowWebsiteRequested(const QString &origin);

private:
    void exportWithDialog();
    void updateCount();
    void updateAllowWebsite();
    void showNotice(const QString &text);
    /// A request that went through from a website shows that it is allowed now.
    void learnAllowedWebsites(int first, int last);
    /// Whether "Allow" is offered for @p record: refused for its website, and not allowed since.
    bool offersAllow(const RequestRecord &record) const;

    LogModel *m_model;
    LogFilterModel *m_filter;
    QLineEdit *m_filterEdit;
    QComboBox *m_statusFilter;
    QPushButton *m_clear;
    QPushButton *m_export;
    QPushButton *m_allowWebsite;
    QLabel *m_count;
    QLabel *m_notice;
    QHash<QString, QDateTime> m_allowedAt; ///< website -> when it was known to be allowed
    QTableView *m_view;
    bool m_follow = true;
};

} // namespace keyrelay
