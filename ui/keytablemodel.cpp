#include "keytablemodel.h"

#include "coretext.h"

#include <QColor>
#include <QLocale>

namespace keyrelay {

KeyTableModel::KeyTableModel(KeyPool *pool, KeyTester *tester, QObject *parent)
    : QAbstractTableModel(parent), m_pool(pool), m_tester(tester)
{
    m_statusTimer.setSingleShot(true);
    m_statusTimer.setInterval(250);
    connect(&m_statusTimer, &QTimer::timeout, this, &KeyTableModel::refresh);
    // A shown state with an end ("rate-limited until 1:02 AM") is refreshed when it ends: one timer
    // for the earliest end, none while no state has one.
    m_stateChangeTimer.setSingleShot(true);
    m_stateChangeTimer.setTimerType(Qt::PreciseTimer); // rare, and a coarse one may fire 5% early
    connect(&m_stateChangeTimer, &QTimer::timeout, this, &KeyTableModel::refresh);
    connectPool();
    if (m_tester)
        connect(m_tester, &KeyTester::finished, this, &KeyTableModel::onTestFinished);
    reload();
}

void KeyTableModel::connectPool()
{
    connect(m_pool, &KeyPool::keysChanged, this, &KeyTableModel::reload);
    // Counters change with every request: coalesced by the pool (one signal until the next snapshot)
    // and here (one refresh per period).
    connect(m_pool, &KeyPool::statusChangedSinceSnapshot, this, [this] {
        if (!m_statusTimer.isActive())
            m_statusTimer.start();
    });
    // A background re-check moves an invalid key's next check without a status signal.
    connect(m_pool, &KeyPool::recheckScheduleChanged, this, &KeyTableModel::scheduleRefresh);
}

void KeyTableModel::setPool(KeyPool *pool)
{
    if (!pool || pool == m_pool)
        return;
    disconnect(m_pool, nullptr, this, nullptr);
    m_pool = pool;
    connectPool();
    // Always a reset: another pool may hold the same keys with other states and counters.
    beginResetModel();
    m_rows = m_pool->snapshot();
    m_secrets.clear();
    const QList<ApiKey> keys = m_pool->keys();
    for (const ApiKey &key : keys)
        m_secrets.append(key.secret);
    endResetModel();
    scheduleStateChange();
}

void KeyTableModel::onTestFinished(quint64 ticket, KeyTester::Outcome outcome, const QString &message)
{
    const QString secret = m_tickets.take(ticket);
    if (secret.isEmpty())
        return;
    {
        TestResult &result = m_tests[secret];
        result.running = false;
        result.outcome = outcome;
        result.message = message;
        result.finishedAt = now();
    }
    if (rowOfSecret(secret) < 0)
        return;
    // What the test found is what the pool believes: a key that works is back in the rotation at once
    // (and a recovery is announced), a refused one leaves it. A test that did not reach the upstream
    // says nothing about the key.
    if (outcome == KeyTester::Outcome::Ok)
        m_pool->report(KeyPool::keyId(secret), QString(), KeyVerdict::Success, -1, QString());
    else if (outcome == KeyTester::Outcome::InvalidKey)
        m_pool->report(KeyPool::keyId(secret), QString(), KeyVerdict::Invalid, -1,
                       QStringLiteral("test: ") + message); // the pool's reasons are English (see CoreText)
    refresh(); // the State column shows the new state together with the result, not 250 ms later
    const int row = rowOfSecret(secret);
    if (row < 0)
        return;
    TestResult &result = m_tests[secret];
    result.healthAfter = m_rows.at(row).health;
    result.lastUsedAfter = m_rows.at(row).lastUsed;
    Q_EMIT dataChanged(index(row, 0), index(row, ColumnCount - 1));
    Q_EMIT testFinished(row, outcome, message);
}

void KeyTableModel::setClock(std::function<QDateTime()> clock)
{
    m_clock = std::move(clock);
    refresh();
}

QDateTime KeyTableModel::now() const
{
    return m_clock ? m_clock() : QDateTime::currentDateTimeUtc();
}

void KeyTableModel::scheduleStateChange()
{
    const QDateTime current = now();
    QDateTime earliest;
    for (const KeyStatus &status : std::as_const(m_rows)) {
        if (!status.enabled)
            continue;
        QDateTime end;
        if (status.health == KeyHealth::RateLimited)
            end = status.coolingUntil;
        else if (status.health == KeyHealth::Invalid || status.health == KeyHealth::Exhausted)
            end = status.recheckAt;
        if (end.isValid() && end > current && (!earliest.isValid() || end < earliest))
            earliest = end;
    }
    m_nextChange = earliest;
    if (!earliest.isValid()) {
        m_stateChangeTimer.stop();
        return;
    }
    // A little after the end, so that the state has ended when the table looks again; a far end is
    // looked at again once a day.
    const qint64 waitMs = qBound<qint64>(0, current.msecsTo(earliest) + 20, 24LL * 3600 * 1000);
    m_stateChangeTimer.start(int(waitMs));
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
    scheduleStateChange();
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
        scheduleStateChange();
        return;
    }
    m_rows = rows;
    if (!m_rows.isEmpty())
        Q_EMIT dataChanged(index(0, 0), index(int(m_rows.size()) - 1, ColumnCount - 1));
    scheduleStateChange();
}

int KeyTableModel::rowCount(const QModelIndex &parent) const
{
    return parent.isValid() ? 0 : int(m_rows.size());
}

int KeyTableModel::columnCount(const QModelIndex &parent) const
{
    return parent.isValid() ? 0 : ColumnCount;
}

QString KeyTableModel::richToolTip(const QStringList &lines)
{
    // Rich text, so that a long reason wraps instead of running off the screen.
    QStringList escaped;
    for (const QString &line : lines)
        escaped << line.toHtmlEscaped();
    return QStringLiteral("<p>") + escaped.join(QStringLiteral("<br>")) + QStringLiteral("</p>");
}

QString KeyTableModel::timeText(const QDateTime &when) const
{
    const QDateTime local = when.toLocalTime();
    // Today: the time alone ("1:02 AM"); another day: with the date.
    if (local.date() == now().toLocalTime().date())
        return QLocale().toString(local.time(), QLocale::ShortFormat);
    return QLocale().toString(local, QLocale::ShortFormat);
}

QString KeyTableModel::stateText(int row) const
{
    const KeyStatus &status = m_rows.at(row);
    if (!status.enabled)
        return tr("disabled");
    const QDateTime current = now();
    switch (status.health) {
    case KeyHealth::Unknown:
        return tr("unknown");
    case KeyHealth::Ok:
        return tr("ok");
    case KeyHealth::RateLimited:
        // The pool books the end of a cooling with the next answer; the table shows it when it comes.
        if (status.coolingUntil.isValid() && status.coolingUntil > current)
            return tr("rate-limited until %1").arg(timeText(status.coolingUntil));
        return tr("ok");
    case KeyHealth::Invalid:
        if (status.recheckAt.isValid() && status.recheckAt > current)
            return tr("invalid, next check %1").arg(timeText(status.recheckAt));
        return tr("invalid, checking");
    case KeyHealth::Exhausted:
        return tr("quota used up"); // when it is tried again: in the tooltip
    }
    return QString();
}

QString KeyTableModel::stateToolTip(int row) const
{
    const KeyStatus &status = m_rows.at(row);
    const QDateTime current = now();
    QStringList lines { stateText(row) };
    if (!status.enabled) {
        lines << tr("KeyRelay does not use this key while it is not enabled.");
    } else if (status.health == KeyHealth::RateLimited && status.coolingUntil > current) {
        lines << tr("Skipped until %1 (the upstream's rate limit).")
                     .arg(QLocale().toString(status.coolingUntil.toLocalTime(), QLocale::LongFormat));
    } else if (status.health == KeyHealth::Invalid) {
        lines << (status.recheckAt > current
                      ? tr("The upstream refused this key. It gets no requests; at %1 KeyRelay checks it "
                           "again (a request for the model list, no tokens), or press Test.")
                            .arg(timeText(status.recheckAt))
                      : tr("The upstream refused this key. KeyRelay is checking it again."));
    } else if (status.health == KeyHealth::Exhausted) {
        lines
            << (status.recheckAt > current
                    ? tr("The key's quota is used up. It gets no requests until %1, then one trial request.")
                          .arg(timeText(status.recheckAt))
                    : tr("The key's quota is used up. The next request tries it once."));
    }
    if (!status.lastError.isEmpty())
        lines << tr("Reason: %1").arg(CoreText::display(status.lastError));
    return richToolTip(lines);
}

KeyTableModel::TestAge KeyTableModel::testAge(const TestResult &result, const KeyStatus &status) const
{
    if (result.running)
        return TestAge::Current;
    // A request that used the key since the test knows better than the test.
    if (status.lastUsed.isValid() && status.lastUsed != result.lastUsedAfter
        && status.health == KeyHealth::Ok)
        return TestAge::Superseded;
    if (status.health != result.healthAfter || status.lastUsed != result.lastUsedAfter)
        return TestAge::Old;
    return TestAge::Current;
}

QString KeyTableModel::testText(int row) const
{
    const auto it = m_tests.constFind(m_secrets.value(row));
    if (it == m_tests.constEnd())
        return QString();
    if (it->running)
        return tr("testing…");
    const TestAge age = testAge(*it, m_rows.at(row));
    if (age == TestAge::Superseded)
        return QString();
    QString text;
    switch (it->outcome) {
    case KeyTester::Outcome::Ok:
        text = tr("ok");
        break;
    case KeyTester::Outcome::InvalidKey:
        text = tr("invalid key: %1").arg(it->message);
        break;
    case KeyTester::Outcome::NoNetwork:
        // The message says where it failed: the upstream, the network proxy or TLS; not "no network".
        text = CoreText::failureKind(it->message) == CoreText::FailureKind::Unknown
            ? tr("no answer: %1").arg(CoreText::display(it->message))
            : CoreText::display(it->message);
        break;
    case KeyTester::Outcome::UpstreamError:
        text = tr("upstream error: %1").arg(it->message);
        break;
    }
    return age == TestAge::Old ? tr("earlier: %1").arg(text) : text;
}

QString KeyTableModel::testToolTip(int row) const
{
    const QString text = testText(row);
    const auto it = m_tests.constFind(m_secrets.value(row));
    if (text.isEmpty() || it == m_tests.constEnd() || it->running)
        return text;
    QStringList lines { text, tr("Tested at %1.").arg(timeText(it->finishedAt)) };
    if (testAge(*it, m_rows.at(row)) == TestAge::Old)
        lines << tr("The key's state has changed since this test; the State column is newer.");
    else if (it->outcome == KeyTester::Outcome::Ok && m_rows.at(row).health == KeyHealth::Ok)
        lines << tr("The key is back in the rotation.");
    return richToolTip(lines);
}

QVariant KeyTableModel::data(const QModelIndex &index, int role) const
{
    if (!index.isValid() || index.row() >= m_rows.size())
        return QVariant();
    const KeyStatus &status = m_rows.at(index.row());
    const int column = index.column();
    // Only a name the user gave: the masked key is in the Key column already.
    const bool hasLabel = !status.label.isEmpty() && status.label != status.masked;
    if (role == Qt::DisplayRole || role == Qt::EditRole) {
        switch (column) {
        case LabelColumn:
            return hasLabel ? status.label : QString();
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
            return status.lastUsed.isValid() ? timeText(status.lastUsed) : tr("never");
        case TestResultColumn:
            return testText(index.row());
        default:
            return QVariant();
        }
    }
    if (role == Qt::CheckStateRole && column == EnabledColumn)
        return status.enabled ? Qt::Checked : Qt::Unchecked;
    if (role == Qt::ToolTipRole) {
        switch (column) {
        case StateColumn:
            return stateToolTip(index.row());
        case TestResultColumn:
            return testToolTip(index.row());
        case LastUsedColumn:
            return status.lastUsed.isValid()
                ? QVariant(QLocale().toString(status.lastUsed.toLocalTime(), QLocale::LongFormat))
                : QVariant();
        case LabelColumn:
            return hasLabel ? tr("%1 (double-click to rename)").arg(status.label)
                            : tr("Double-click to name this key");
        default:
            return QVariant();
        }
    }
    if (role == Qt::TextAlignmentRole
        && (column == RequestsColumn || column == ErrorsColumn || column == TokensTodayColumn))
        return int(Qt::AlignRight | Qt::AlignVCenter);
    if (role == Qt::ForegroundRole && column == StateColumn) {
        const QDateTime current = now();
        if (!status.enabled)
            return QColor(0x70, 0x70, 0x70);
        if (status.health == KeyHealth::Invalid || status.health == KeyHealth::Exhausted)
            return QColor(0xc0, 0x20, 0x20);
        if (status.health == KeyHealth::RateLimited && status.coolingUntil > current)
            return QColor(0xb0, 0x70, 0x00);
        if (status.health == KeyHealth::Ok || status.health == KeyHealth::RateLimited)
            return QColor(0x20, 0x80, 0x30);
    }
    if (role == Qt::ForegroundRole && column == TestResultColumn) {
        const auto it = m_tests.constFind(m_secrets.value(index.row()));
        if (it != m_tests.constEnd() && !it->running) {
            if (testAge(*it, status) != TestAge::Current)
                return QColor(0x70, 0x70, 0x70); // old news
            return it->outcome == KeyTester::Outcome::Ok ? QColor(0x20, 0x80, 0x30)
                                                         : QColor(0xc0, 0x20, 0x20);
        }
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
    QStringList addedIds;
    for (const QString &secret : parsed) {
        if (present.contains(secret))
            continue;
        present.insert(secret);
        ApiKey key;
        key.secret = secret;
        keys.append(key);
        addedIds.append(KeyPool::keyId(secret));
    }
    if (!addedIds.isEmpty()) {
        m_pool->setKeys(keys);
        m_pool->checkSoon(addedIds); // their state before the first chat (the running proxy checks them)
    }
    return int(addedIds.size());
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
