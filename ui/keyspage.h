// The "Keys" page: paste keys, see their health, label, enable, test and remove them.
#pragma once

#include <QWidget>

class QLabel;
class QPlainTextEdit;
class QPushButton;
class QTableView;

namespace keyrelay {

class KeyPool;
class KeyStore;
class KeyTableModel;
class KeyTester;
struct UserStores;

class KeysPage : public QWidget
{
    Q_OBJECT
public:
    /// @p store may be null (nothing is saved); @p tester may be null (no Test buttons).
    KeysPage(KeyPool *pool, KeyStore *store, KeyTester *tester, QWidget *parent = nullptr);
    ~KeysPage() override;

    KeyTableModel *model() const { return m_model; }
    QTableView *view() const { return m_view; }
    QPlainTextEdit *pasteBox() const { return m_paste; }
    QPushButton *addButton() const { return m_add; }
    QPushButton *removeButton() const { return m_remove; }
    /// The last message shown under the paste box (added, saved, errors).
    QString statusText() const;
    /// Shown while there is no key: explains pass-through and what to do.
    QLabel *emptyHint() const { return m_emptyHint; }

    /// Where the keys are stored and why, for the user (replaces the default line under the table).
    void setStorageNotice(const QString &text);
    QString storageNotice() const;
    /// The translated notice for @p stores: the keychain, or the file and why.
    static QString storageNoticeFor(const UserStores &stores);

    /// Fits the columns to the table's width (also on every resize, until the user sizes a column).
    void fitColumns();

Q_SIGNALS:
    /// Saving the keys failed; @p error is safe to show.
    void saveFailed(const QString &error);

protected:
    bool eventFilter(QObject *watched, QEvent *event) override;

private:
    void setUpColumns();
    void addFromPasteBox();
    void removeSelected();
    void save();
    void installTestButtons();
    void setStatus(const QString &text, bool error);

    KeyPool *m_pool;
    KeyStore *m_store;
    KeyTester *m_tester;
    KeyTableModel *m_model;
    QPlainTextEdit *m_paste;
    QPushButton *m_add;
    QPushButton *m_remove;
    QLabel *m_status;
    QLabel *m_storeLabel;
    QLabel *m_emptyHint;
    QTableView *m_view;
    bool m_fittingColumns = false;
    bool m_userSizedColumns = false;
};

} // namespace keyrelay
