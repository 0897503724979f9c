// The "Keys" page: paste keys, see their health, label, enable, test and remove them.
#pragma once

#include "keypool.h"

#include <QList>
#include <QPair>
#include <QTimer>
#include <QWidget>

class QAction;
class QComboBox;
class QFrame;
class QLabel;
class QPlainTextEdit;
class QPushButton;
class QTableView;

namespace keyrelay {

class KeyPool;
class KeyStore;
class KeyTableModel;
class KeyTester;
class ProviderKeys;
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

    // --- Undo of removals (issue 15) ---
    /// Shown for undoTimeoutMs() after keys were removed: "Removed N key(s)" and an Undo button (Ctrl+Z).
    QFrame *undoBar() const { return m_undoBar; }
    QPushButton *undoButton() const { return m_undoButton; }
    static constexpr int DefaultUndoTimeoutMs = 15000;
    int undoTimeoutMs() const { return m_undoTimer.interval(); }
    void setUndoTimeoutMs(int ms) { m_undoTimer.setInterval(ms); }
    /// Puts the keys removed last back where they were, with their labels and enabled state (keys pasted
    /// again meanwhile are not doubled). Returns how many came back.
    int undoRemove();
    // --- end undo ---

    /// Where the keys are stored and why, for the user (replaces the default line under the table; with
    /// providers, the line while the main pool, "default", is shown).
    void setStorageNotice(const QString &text);
    QString storageNotice() const;
    /// The translated notice for @p stores: the keychain, or the file and why.
    static QString storageNoticeFor(const UserStores &stores);

    /// Fits the columns to the table's width (also on every resize, until the user sizes a column).
    void fitColumns();

    // --- Keys per provider (issue 17) ---
    /// With providers configured, a selector above the table picks whose keys the page shows and edits
    /// (its pool and store; "default" is the main pool). @p keys may be null (no selector). Call
    /// refreshProviders() when the providers changed.
    void setProviderKeys(ProviderKeys *keys);
    void refreshProviders();
    /// The provider whose keys are shown; empty when no providers are configured (the main pool).
    QString currentProvider() const;
    /// Shows the keys of @p providerId (one listed by the selector). Returns false if it is not listed.
    bool selectProvider(const QString &providerId);
    QComboBox *providerCombo() const { return m_providerCombo; }
    KeyPool *currentPool() const { return m_pool; }
    KeyStore *currentStore() const { return m_store; }
    // --- end keys per provider ---

Q_SIGNALS:
    /// Saving the keys failed; @p error is safe to show.
    void saveFailed(const QString &error);
    /// Another provider's keys are shown (empty: the main pool, no providers); its Test must ask that
    /// provider.
    void providerSelected(const QString &providerId);

protected:
    bool eventFilter(QObject *watched, QEvent *event) override;

private:
    void setUpColumns();
    void addFromPasteBox();
    void removeSelected();
    void save();
    void installTestButtons();
    void buildUndoBar();
    void clearUndo();
    /// Keyboard and screen readers: one Tab stop for the table, names for the inputs and row buttons.
    void setUpAccessibility();
    /// Each row's Test button is named after its key ("Test key sk-…abcd") and left out of the Tab chain
    /// (Enter on its cell runs it).
    void describeRowButtons();
    void setStatus(const QString &text, bool error);
    /// Shows and edits @p pool, saved to @p store.
    void setSource(KeyPool *pool, KeyStore *store);
    void connectPool();
    void updateStoreLabel();

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
    QWidget *m_providerRow = nullptr;
    QComboBox *m_providerCombo = nullptr;
    ProviderKeys *m_providerKeys = nullptr;
    KeyStore *m_mainStore = nullptr;
    QString m_mainNotice; ///< where the main pool's keys are stored (setStorageNotice)
    // Undo of the last removal: the keys with the rows they had, in ascending row order.
    QFrame *m_undoBar = nullptr;
    QLabel *m_undoLabel = nullptr;
    QPushButton *m_undoButton = nullptr;
    QAction *m_undoAction = nullptr;
    QTimer m_undoTimer;
    QList<QPair<int, ApiKey>> m_removed;
    bool m_fittingColumns = false;
    bool m_userSizedColumns = false;
};

} // namespace keyrelay
