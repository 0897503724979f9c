// The "Log" page: every request that went through the proxy, filterable, exportable.
#pragma once

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

Q_SIGNALS:
    /// The user chose "Allow this website" on a blocked request.
    void allowWebsiteRequested(const QString &origin);

private:
    void exportWithDialog();
    void updateCount();
    void updateAllowWebsite();

    LogModel *m_model;
    LogFilterModel *m_filter;
    QLineEdit *m_filterEdit;
    QComboBox *m_statusFilter;
    QPushButton *m_clear;
    QPushButton *m_export;
    QPushButton *m_allowWebsite;
    QLabel *m_count;
    QTableView *m_view;
    bool m_follow = true;
};

} // namespace keyrelay
