// The key list as a table: labels and "enabled" editable, keys only ever shown masked.
#pragma once

#include "keypool.h"
#include "keytester.h"
#include "usagestore.h"

#include <QAbstractTableModel>
#include <QHash>
#include <QTimer>

#include <functional>

namespace keyrelay {

class KeyTableModel : public QAbstractTableModel
{
    Q_OBJECT
public:
    enum Column {
        LabelColumn,
        KeyColumn,
        EnabledColumn,
        StateColumn,
        RequestsColumn,
        ErrorsColumn,
        TokensTodayColumn, ///< from the usage store, when one is set
        LastUsedColumn,
        TestColumn,
        TestResultColumn,
        ColumnCount
    };

    /// @p tester may be null (then tests are not offered).
    KeyTableModel(KeyPool *pool, KeyTester *tester, QObject *parent = nullptr);
    /// Shows @p pool instead (the Keys page's provider selector); test results stay with their keys.
    void setPool(KeyPool *pool);
    KeyPool *pool() const { return m_pool; }
    /// Where "Tokens today" comes from (thread-safe store; may be null: the column stays empty).
    void setUsageStore(const UsageStore *usage);
    /// Refreshes the counters soon (a request finished: its tokens are in the usage store now).
    void scheduleRefresh();

    int rowCount(const QModelIndex &parent = QModelIndex()) const override;
    int columnCount(const QModelIndex &parent = QModelIndex()) const override;
    QVariant data(const QModelIndex &index, int role = Qt::DisplayRole) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;
    Qt::ItemFlags flags(const QModelIndex &index) const override;
    bool setData(const QModelIndex &index, const QVariant &value, int role = Qt::EditRole) override;

    /// Adds the keys found in pasted text (any form KeyPool::parseKeyList accepts). Returns how many were
    /// new.
    int addKeys(const QString &text);
    /// Removes the given rows.
    void removeRows(QList<int> rows);
    /// Tests the key in @p row against the upstream; the result shows in the "Test result" column.
    void testKey(int row);
    bool isTesting(int row) const;

    /// For tests: where "now" comes from (default: the system clock). Shown states that end at a time
    /// ("rate-limited until …") change when that time has passed.
    void setClock(std::function<QDateTime()> clock);
    /// When the next shown state ends (one single-shot timer refreshes the table then); invalid when
    /// no shown state has an end, and then nothing polls.
    QDateTime nextStateChange() const { return m_nextChange; }

public Q_SLOTS:
    /// Re-reads the pool now (normally counters are refreshed at most four times a second).
    void refresh();

Q_SIGNALS:
    void testFinished(int row, keyrelay::KeyTester::Outcome outcome, const QString &message);

private:
    struct TestResult
    {
        bool running = false;
        KeyTester::Outcome outcome = KeyTester::Outcome::Ok;
        QString message;
        QDateTime finishedAt;
        /// The key's state right after the test: when it changes, the result is old news.
        KeyHealth healthAfter = KeyHealth::Unknown;
        QDateTime lastUsedAfter;
    };
    enum class TestAge { Current, Old, Superseded };
    QString stateText(int row) const;
    QString stateToolTip(int row) const;
    QString testText(int row) const;
    QString testToolTip(int row) const;
    TestAge testAge(const TestResult &result, const KeyStatus &status) const;
    QString timeText(const QDateTime &when) const;
    static QString richToolTip(const QStringList &lines);
    QDateTime now() const;
    void onTestFinished(quint64 ticket, KeyTester::Outcome outcome, const QString &message);
    /// Arms the single-shot timer for the earliest end of a shown state.
    void scheduleStateChange();
    int rowOfSecret(const QString &secret) const;
    void reload();
    void connectPool();

    KeyPool *m_pool;
    KeyTester *m_tester;
    QList<KeyStatus> m_rows;
    QStringList m_secrets; ///< per row, only to run tests and keep test results; never shown
    QHash<QString, TestResult> m_tests; ///< by secret
    QHash<quint64, QString> m_tickets; ///< running test -> secret
    QTimer m_statusTimer;
    QTimer m_stateChangeTimer;
    QDateTime m_nextChange;
    std::function<QDateTime()> m_clock;
    const UsageStore *m_usage = nullptr;
    QHash<QString, qint64> m_tokensToday; ///< key id -> total tokens today
};

} // namespace keyrelay
