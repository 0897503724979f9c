#include "keytablemodel.h"

#include <QColor>
#include <QLocale>

namespace keyrelay {

KeyTableModel::KeyTableModel(KeyPool *pool, KeyTester *tester, QObject *parent)
    : QAbstractTableModel(parent), m_pool(pool), m_tester(tester)
{
    m_statusTimer.setSingleShot(true);
    m_statusTimer.setInterval(250);
    connect(&m_statusTimer, &QTimer::timeout, this, &KeyTableModel::refresh);
    connect(m_pool, &KeyPool::keysChanged, this, &KeyTableModel::reload);
    // Counters change with every request: coalesced by the pool (one signal until the next snapshot)
    // and here (one refresh per period).
    connect(m_pool, &KeyPool::statusChangedSinceSnapshot, this, [this] {
        if (!m_statusTimer.isActive())
            m_statusTimer.start();
    });
    if (m_tester) {
        connect(m_tester, &KeyTester::finished, this,
                [this](quint64 ticket, KeyTester::Outcome outcome, const QString &message) {
                    const QString secret = m_tickets.take(ticket);
                    if (secret.isEmpty())
                        return;
                    TestResult &result = m_tests[secret];
                    result.running = false;
                    result.outcome = outcome;
                    result.message = message;
                    const int row = rowOfSecret(secret);
                    if (row < 0)
                        return;
                    // What the test found is what the pool believes: a key that works is back in the
                    // rotation at once (and a recovery is announced), a refused one leaves it.
                    if (outcome == KeyTester::Outcome::Ok)
                        m_pool->report(KeyPool::keyId(secret), QString(), KeyVerdict::Success, -1, QString());
                    else if (outcome == KeyTester::Outcome::InvalidKey)
                        m_pool->report(KeyPool::keyId(secret), QString(), KeyVerdict::Invalid, -1,
                                       tr("test: %1").arg(message));
                    Q_EMIT dataChanged(index(row, 0), index(row, ColumnCount - 1));
                    Q_EMIT testFinished(row, outcome, message);
                });
    }
    reload();
}

void KeyTableModel::reload()
{
    QStringList secrets;
    const QList<ApiKey> keys = m_pool->keys();
    for (const ApiKey &key : keys)
        secrets.append(key.secret);
    if (secrets == m_secrets) {
        // Same keys in the same order (a label or "enabled" changed): no reset, so an open editor and
        // the Test buttons stay where they are.
        refresh();
        return;
    }
    beginResetModel();
    m_rows = m_pool->snapshot();
    m_secrets = secrets;
    // Forget test results of removed keys.
    for (auto it = m_tests.begin(); it != m_tests.end();) {
        if (!m_secrets.contains(it.key()) && !it->running)
            it = m_tests.erase(it);
        else
            ++it;
    }
    endResetModel();
}

void KeyTableModel::setUsageStore(const UsageStore *usage)
{
    m_usage = usage;
    refresh();
}

void KeyTableModel::scheduleRefresh()
{
    if (!m_statusTimer.isActive())
        m_statusTimer.start();
}

void KeyTableModel::refresh()
{
    if (m_usage) {
        m_tokensToday.clear();
        const QList<UsageRow> today = m_usage->forDay(m_usage->today(), UsageStore::GroupBy::Key);
        for (const UsageRow &row : today)
            m_tokensToday[row.keyId] += row.totalTokens;
    }
    const QList<KeyStatus> rows = m_pool->snapshot();
    if (rows.size() != m_rows.size()) {
        // Keys were added or removed meanwhile; keysChanged() is on its way, so only resync.
        beginResetModel();
        m_rows = rows;
        m_secrets.clear();
        const QList<ApiKey> keys = m_pool->keys();
        for (const ApiKey &key : keys)
            m_secrets.append(key.secret);
        endResetModel();
        return;
    }
    m_rows = rows;
    if (!m_rows.isEmpty())
        Q_EMIT dataChanged(index(0, 0), index(int(m_rows.size()) - 1, ColumnCount - 1));
}

int KeyTableModel::rowCount(const QModelIndex &parent) const
{
    return parent.isValid() ? 0 : int(m_rows.size());
}

int KeyTableModel::columnCount(const QModelIndex &parent) const
{
    return parent.isValid() ? 0 : ColumnCount;
}

QString KeyTableModel::stateText(int row) const
{
    const KeyStatus &status = m_rows.at(row);
    switch (status.health) {
    case KeyHealth::Unknown: {
        // Not used since the last change, but maybe tested.
        const auto it = m_tests.constFind(m_secrets.value(row));
        if (it != m_tests.constEnd() && !it->running && it->outcome == KeyTester::Outcome::Ok)
            return tr("ok (tested)");
        return tr("unknown");
    }
    case KeyHealth::Ok:
        return tr("ok");
    case KeyHealth::RateLimited:
        return status.coolingUntil.isValid()
            ? tr("rate-limited until %1")
                  .arg(QLocale().toString(status.coolingUntil.toLocalTime().time(), QLocale::ShortFormat))
            : tr("rate-limited");
    case KeyHealth::Invalid:
        return status.coolingUntil.isValid()
            ? tr("invalid (re-checked %1)")
                  .arg(QLocale().toString(status.coolingUntil.toLocalTime().time(), QLocale::ShortFormat))
            : tr("invalid");
    case KeyHealth::Exhausted:
        return status.coolingUntil.isValid()
            ? tr("quota used up (re-checked %1)")
                  .arg(QLocale().toString(status.coolingUntil.toLocalTime().time(), QLocale::ShortFormat))
            : tr("quota used up");
    }
    return QString();
}

QString KeyTableModel::testText(int row) const
{
    const auto it = m_tests.constFind(m_secrets.value(row));
    if (it == m_tests.constEnd())
        return QString();
    if (it->running)
        return tr("testing…");
    switch (it->outcome) {
    case KeyTester::Outcome::Ok:
        return tr("ok");
    case KeyTester::Outcome::InvalidKey:
        return tr("invalid key: %1").arg(it->message);
    case KeyTester::Outcome::NoNetwork:
        return tr("no network: %1").arg(it->message);
    case KeyTester::Outcome::UpstreamError:
        return tr("upstream error: %1").arg(it->message);
    }
    return QString();
}

QVariant KeyTableModel::data(const QModelIndex &index, int role) const
{
    if (!index.isValid() || index.row() >= m_rows.size())
        return QVariant();
    const KeyStatus &status = m_rows.at(index.row());
    const int column = index.column();
    if (role == Qt::DisplayRole || role == Qt::EditRole) {
        switch (column) {
        case LabelColumn:
            return status.label;
        case KeyColumn:
            return status.masked;
        case StateColumn:
            return stateText(index.row());
        case RequestsColumn:
            return role == Qt::EditRole ? QVariant(status.requests)
                                        : QVariant(QLocale().toString(status.requests));
        case ErrorsColumn:
            return role == Qt::EditRole ? QVariant(status.errors)
                                        : QVariant(QLocale().toString(status.errors));
        case TokensTodayColumn: {
            if (!m_usage)
                return QVariant();
            const qint64 tokens = m_tokensToday.value(status.id);
            return role == Qt::EditRole ? QVariant(tokens) : QVariant(QLocale().toString(tokens));
        }
        case LastUsedColumn:
            return status.lastUsed.isValid()
                ? QLocale().toString(status.lastUsed.toLocalTime(), QLocale::ShortFormat)
                : tr("never");
        case TestResultColumn:
            return testText(index.row());
        default:
            return QVariant();
        }
    }
    if (role == Qt::CheckStateRole && column == EnabledColumn)
        return status.enabled ? Qt::Checked : Qt::Unchecked;
    if (role == Qt::ToolTipRole) {
        if (column == StateColumn && !status.lastError.isEmpty())
            return status.lastError;
        if (column == StateColumn && status.health == KeyHealth::RateLimited && status.coolingUntil.isValid())
            return tr("Skipped until %1").arg(QLocale().toString(status.coolingUntil.toLocalTime().time()));
        if (column == TestResultColumn)
            return testText(index.row());
        if (column == LabelColumn)
            return tr("Double-click to rename");
    }
    if (role == Qt::TextAlignmentRole
        && (column == RequestsColumn || column == ErrorsColumn || column == TokensTodayColumn))
        return int(Qt::AlignRight | Qt::AlignVCenter);
    if (role == Qt::ForegroundRole && column == StateColumn) {
        if (status.health == KeyHealth::Invalid || status.health == KeyHealth::Exhausted)
            return QColor(0xc0, 0x20, 0x20);
        if (status.health == KeyHealth::RateLimited)
            return QColor(0xb0, 0x70, 0x00);
        if (status.health == KeyHealth::Ok || stateText(index.row()) == tr("ok (tested)"))
            return QColor(0x20, 0x80, 0x30);
    }
    if (role == Qt::ForegroundRole && column == TestResultColumn) {
        const auto it = m_tests.constFind(m_secrets.value(index.row()));
        if (it != m_tests.constEnd() && !it->running)
            return it->outcome == KeyTester::Outcome::Ok ? QColor(0x20, 0x80, 0x30)
                                                         : QColor(0xc0, 0x20, 0x20);
    }
    return QVariant();
}

QVariant KeyTableModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole)
        return QAbstractTableModel::headerData(section, orientation, role);
    switch (section) {
    case LabelColumn:
        return tr("Label");
    case KeyColumn:
        return tr("Key");
    case EnabledColumn:
        return tr("Enabled");
    case StateColumn:
        return tr("State");
    case RequestsColumn:
        return tr("Requests");
    case ErrorsColumn:
        return tr("Errors");
    case TokensTodayColumn:
        return tr("Tokens today");
    case LastUsedColumn:
        return tr("Last used");
    case TestColumn:
        return tr("Test");
    case TestResultColumn:
        return tr("Test result");
    default:
        return QVariant();
    }
}

Qt::ItemFlags KeyTableModel::flags(const QModelIndex &index) const
{
    Qt::ItemFlags result = QAbstractTableModel::flags(index);
    if (index.column() == LabelColumn)
        result |= Qt::ItemIsEditable;
    if (index.column() == EnabledColumn)
        result |= Qt::ItemIsUserCheckable;
    return result;
}

bool KeyTableModel::setData(const QModelIndex &index, const QVariant &value, int role)
{
    if (!index.isValid() || index.row() >= m_rows.size())
        return false;
    if (index.column() == LabelColumn && role == Qt::EditRole) {
        QString label = value.toString().trimmed();
        // Leaving the masked form as it was means "no label".
        if (label == m_rows.at(index.row()).masked)
            label.clear();
        m_pool->setLabel(index.row(), label);
        return true;
    }
    if (index.column() == EnabledColumn && role == Qt::CheckStateRole) {
        const bool enabled = value.toInt() == Qt::Checked;
        m_pool->setEnabled(index.row(), enabled);
        return true;
    }
    return false;
}

int KeyTableModel::addKeys(const QString &text)
{
    const QStringList parsed = KeyPool::parseKeyList(text);
    QList<ApiKey> keys = m_pool->keys();
    QSet<QString> present;
    for (const ApiKey &key : std::as_const(keys))
        present.insert(key.secret);
    int added = 0;
    for (const QString &secret : parsed) {
        if (present.contains(secret))
            continue;
        present.insert(secret);
        ApiKey key;
        key.secret = secret;
        keys.append(key);
        ++added;
    }
    if (added > 0)
        m_pool->setKeys(keys);
    return added;
}

void KeyTableModel::removeRows(QList<int> rows)
{
    std::sort(rows.begin(), rows.end(), std::greater<int>());
    QList<ApiKey> keys = m_pool->keys();
    bool changed = false;
    int last = -1;
    for (int row : std::as_const(rows)) {
        if (row == last || row < 0 || row >= keys.size())
            continue;
        keys.removeAt(row);
        last = row;
        changed = true;
    }
    if (changed)
        m_pool->setKeys(keys);
}

void KeyTableModel::testKey(int row)
{
    if (!m_tester || row < 0 || row >= m_secrets.size() || isTesting(row))
        return;
    const QString secret = m_secrets.at(row);
    TestResult &result = m_tests[secret];
    result.running = true;
    result.message.clear();
    m_tickets.insert(m_tester->test(secret), secret);
    Q_EMIT dataChanged(index(row, TestResultColumn), index(row, TestResultColumn));
}

bool KeyTableModel::isTesting(int row) const
{
    const auto it = m_tests.constFind(m_secrets.value(row));
    return it != m_tests.constEnd() && it->running;
}

int KeyTableModel::rowOfSecret(const QString &secret) const
{
    return int(m_secrets.indexOf(secret));
}

} // namespace keyrelay
