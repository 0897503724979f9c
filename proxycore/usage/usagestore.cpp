#include "usagestore.h"

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QLoggingCategory>
#include <QSet>
#include <QSqlDatabase>
#include <QSqlError>
#include <QSqlQuery>
#include <QTimer>

#include <algorithm>
#include <atomic>
#include <map>
#include <tuple>
#include <utility>

Q_LOGGING_CATEGORY(lcUsage, "keyrelay.usage", QtInfoMsg)

namespace keyrelay {

namespace {

QString driverName()
{
    return QStringLiteral("QSQLITE");
}

QString dayText(const QDate &day)
{
    return day.toString(Qt::ISODate);
}

/// SQLite stores a null QString as NULL; the columns are NOT NULL, with '' for "none".
QString notNull(const QString &text)
{
    return text.isNull() ? QStringLiteral("") : text;
}

QString newConnectionName()
{
    static std::atomic<int> counter { 0 };
    return QStringLiteral("keyrelay-usage-%1").arg(++counter);
}

/// SQLITE_CORRUPT (11) and SQLITE_NOTADB (26): the file itself is bad, not the disk or a lock.
bool isCorruption(const QSqlError &error)
{
    const QString code = error.nativeErrorCode();
    return code == QLatin1String("11") || code == QLatin1String("26");
}

QString errorText(const QSqlError &error)
{
    const QString text = error.databaseText().isEmpty() ? error.text() : error.databaseText();
    return text.isEmpty() ? QStringLiteral("unknown error") : text;
}

/// The usage table of schema 2 under the name @p table.
QString usageTableSql(const char *table)
{
    return QStringLiteral(
               "CREATE TABLE %1 ("
               " day TEXT NOT NULL," // local date, YYYY-MM-DD
               " provider TEXT NOT NULL DEFAULT 'default'," // the provider id that served
               " key_id TEXT NOT NULL," // KeyPool::keyId(), never the key
               " key_label TEXT NOT NULL DEFAULT ''," // the latest label recorded for that key on that day
               " model TEXT NOT NULL DEFAULT '',"
               " requests INTEGER NOT NULL DEFAULT 0,"
               " prompt_tokens INTEGER NOT NULL DEFAULT 0,"
               " completion_tokens INTEGER NOT NULL DEFAULT 0,"
               " total_tokens INTEGER NOT NULL DEFAULT 0,"
               " PRIMARY KEY (day, provider, key_id, model)) WITHOUT ROWID")
        .arg(QLatin1String(table));
}

const char *const kMetaSchema
    = "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID";

/// The columns of schema 1's usage_daily (keyed by day, key_id and model); schema 2 adds provider.
const char *const kColumns[] = { "day",      "key_id",        "key_label",         "model",
                                 "requests", "prompt_tokens", "completion_tokens", "total_tokens" };

/// Schema 1 to 2 (SQLite cannot change a primary key in place): a new table, every row copied with the
/// provider 'default', the old table dropped and the new one renamed, in the transaction the caller holds.
const char *const kMigrateFromVersion1[] = {
    "INSERT INTO usage_daily_v2 (day, provider, key_id, key_label, model, requests, prompt_tokens,"
    " completion_tokens, total_tokens) SELECT day, 'default', key_id, key_label, model, requests,"
    " prompt_tokens, completion_tokens, total_tokens FROM usage_daily",
    "DROP TABLE usage_daily",
    "ALTER TABLE usage_daily_v2 RENAME TO usage_daily",
};

QString providerOrDefault(const QString &provider)
{
    return provider.isEmpty() ? QLatin1String(UsageStore::DefaultProvider) : provider;
}

} // namespace

UsageEvent UsageEvent::fromRecord(const RequestRecord &record)
{
    UsageEvent event;
    event.provider = providerOrDefault(record.provider);
    event.keyId = record.keyId;
    event.keyLabel = record.keyLabel;
    event.model = record.model;
    event.promptTokens = record.promptTokens;
    event.completionTokens = record.completionTokens;
    event.totalTokens = record.totalTokens;
    event.fellBack = record.fellBack;
    return event;
}

bool UsageRow::operator==(const UsageRow &other) const
{
    return day == other.day && provider == other.provider && keyId == other.keyId
        && keyLabel == other.keyLabel && model == other.model && requests == other.requests
        && promptTokens == other.promptTokens && completionTokens == other.completionTokens
        && totalTokens == other.totalTokens;
}

UsageStore::UsageStore(const QString &path, Clock clock, QObject *parent)
    : QObject(parent), m_path(path), m_connectionName(newConnectionName()),
      m_clock(clock ? std::move(clock) : Clock([] { return QDateTime::currentDateTimeUtc(); })),
      m_context(new QObject), m_timer(new QTimer(m_context))
{
    m_thread.setObjectName(QStringLiteral("KeyRelay usage"));
    m_timer->setSingleShot(true);
    m_timer->setInterval(DefaultFlushIntervalMs);
    connect(m_timer, &QTimer::timeout, m_context, [this] { flushOnThread(nullptr); });
    m_context->moveToThread(&m_thread);
    m_thread.start();
    runOnThread([this] { ensureOpen(); });
}

UsageStore::~UsageStore()
{
    QThread *here = QThread::currentThread();
    runOnThread([this, here] {
        QString error;
        if (!flushOnThread(&error))
            qCWarning(lcUsage).noquote() << "usage figures could not be saved at exit:" << error;
        m_timer->stop();
        closeDatabase();
        m_context->moveToThread(here);
    });
    m_thread.quit();
    m_thread.wait();
    delete m_context;
}

QString UsageStore::pathNextTo(const QString &settingsFile)
{
    return QFileInfo(settingsFile).absoluteDir().filePath(QStringLiteral("usage.sqlite"));
}

template<typename Fn> void UsageStore::runOnThread(Fn &&fn) const
{
    if (QThread::currentThread() == &m_thread)
        fn();
    else
        QMetaObject::invokeMethod(m_context, std::forward<Fn>(fn), Qt::BlockingQueuedConnection);
}

void UsageStore::record(const UsageEvent &event)
{
    const QDateTime time = now();
    const qint64 prompt = qMax<qint64>(0, event.promptTokens);
    const qint64 completion = qMax<qint64>(0, event.completionTokens);
    const qint64 total = event.totalTokens >= 0 ? event.totalTokens : prompt + completion;
    // A try that fell back to the next provider is not a request of its own (the try that answered
    // counts it); without tokens it leaves no trace, not even an empty row.
    if (event.fellBack && prompt == 0 && completion == 0 && total == 0)
        return;
    bool arm = false;
    bool flushNow = false;
    {
        QMutexLocker lock(&m_mutex);
        PendingValue &value = m_pending[PendingKey { dayAtLocked(time), providerOrDefault(event.provider),
                                                     event.keyId, event.model }];
        if (!event.keyLabel.isEmpty())
            value.keyLabel = event.keyLabel;
        if (!event.fellBack)
            ++value.requests;
        value.promptTokens += prompt;
        value.completionTokens += completion;
        value.totalTokens += total;
        arm = m_pendingEvents++ == 0;
        if (m_pendingEvents >= m_threshold && !m_flushQueued && !m_failing) {
            m_flushQueued = true;
            flushNow = true;
        }
    }
    if (flushNow)
        QMetaObject::invokeMethod(
            m_context, [this] { flushOnThread(nullptr); }, Qt::QueuedConnection);
    else if (arm)
        QMetaObject::invokeMethod(
            m_context,
            [this] {
                if (!m_timer->isActive())
                    m_timer->start();
            },
            Qt::QueuedConnection);
}

QDateTime UsageStore::now() const
{
    const QDateTime time = m_clock();
    return time.isValid() ? time : QDateTime::currentDateTimeUtc();
}

QDate UsageStore::dayAtLocked(const QDateTime &time)
{
    // Local time is slow to work out (a time-zone lookup per call): keep the current day's bounds and
    // look again only when they are passed, and at least once a minute (the zone may change).
    const qint64 ms = time.toMSecsSinceEpoch();
    if (ms >= m_dayCache.startMs && ms < m_dayCache.endMs)
        return m_dayCache.day;
    const QDate day = time.toLocalTime().date();
    const qint64 start = QDateTime(day, QTime(0, 0)).toMSecsSinceEpoch();
    const qint64 end = QDateTime(day.addDays(1), QTime(0, 0)).toMSecsSinceEpoch();
    // A midnight skipped or repeated by a clock change: keep nothing that is not surely inside the day.
    if (start <= ms && ms < end && QDateTime::fromMSecsSinceEpoch(start).date() == day
        && QDateTime::fromMSecsSinceEpoch(end - 1).date() == day)
        m_dayCache = { qMax(start, ms - 60000), qMin(end, ms + 60000), day };
    else
        m_dayCache = {};
    return day;
}

bool UsageStore::flush(QString *error)
{
    bool ok = true;
    QString failure;
    runOnThread([this, &ok, &failure] { ok = flushOnThread(&failure); });
    if (error)
        *error = failure;
    return ok;
}

int UsageStore::pendingEvents() const
{
    QMutexLocker lock(&m_mutex);
    return m_pendingEvents;
}

void UsageStore::setFlushPolicy(int intervalMs, int threshold)
{
    {
        QMutexLocker lock(&m_mutex);
        m_threshold = qMax(1, threshold);
    }
    runOnThread([this, intervalMs] { m_timer->setInterval(qMax(0, intervalMs)); });
}

bool UsageStore::isOpen() const
{
    QMutexLocker lock(&m_mutex);
    return m_open;
}

QString UsageStore::problem() const
{
    QMutexLocker lock(&m_mutex);
    return m_problem;
}

QDateTime UsageStore::createdAt() const
{
    QMutexLocker lock(&m_mutex);
    return m_createdAt;
}

QDate UsageStore::today() const
{
    return now().toLocalTime().date();
}

QList<UsageRow> UsageStore::daily(int days, GroupBy by) const
{
    const QDate to = today();
    const QDate from = to.addDays(-(qMax(1, days) - 1));
    QList<UsageRow> rows;
    runOnThread([&] { rows = query(from, to, true, by); });
    return rows;
}

QList<UsageRow> UsageStore::forDay(const QDate &day, GroupBy by) const
{
    QList<UsageRow> rows;
    runOnThread([&] { rows = query(day, day, true, by); });
    return rows;
}

QList<UsageRow> UsageStore::totals(GroupBy by) const
{
    QList<UsageRow> rows;
    runOnThread([&] { rows = query(QDate(), QDate(), false, by); });
    return rows;
}

UsageRow UsageStore::todayTotal() const
{
    UsageRow total;
    total.day = today();
    const QList<UsageRow> rows = forDay(total.day, GroupBy::Key);
    for (const UsageRow &row : rows) {
        total.requests += row.requests;
        total.promptTokens += row.promptTokens;
        total.completionTokens += row.completionTokens;
        total.totalTokens += row.totalTokens;
    }
    return total;
}

// --- on m_thread ---------------------------------------------------------------------------------

void UsageStore::setProblem(const QString &problem, bool lasting)
{
    {
        QMutexLocker lock(&m_mutex);
        if (m_problem == problem)
            return;
        m_problem = problem;
        m_problemLasting = lasting && !problem.isEmpty();
    }
    if (!problem.isEmpty())
        qCWarning(lcUsage).noquote() << problem;
    QMetaObject::invokeMethod(
        this, [this, problem] { Q_EMIT problemChanged(problem); }, Qt::QueuedConnection);
}

bool UsageStore::ensureOpen()
{
    if (isOpen())
        return true;
    if (!QSqlDatabase::isDriverAvailable(driverName())) {
        setProblem(tr("Usage figures are not saved: Qt's SQLite driver is missing (on Debian, install "
                      "libqt6sql6-sqlite)."));
        return false;
    }
    const QString folder = QFileInfo(m_path).absolutePath();
    if (!QDir().mkpath(folder)) {
        setProblem(tr("Usage figures are not saved: the folder %1 cannot be created.")
                       .arg(QDir::toNativeSeparators(folder)));
        return false;
    }
    for (int attempt = 0; attempt < 2; ++attempt) {
        {
            QSqlDatabase db = QSqlDatabase::addDatabase(driverName(), m_connectionName);
            db.setDatabaseName(m_path);
            db.setConnectOptions(QStringLiteral("QSQLITE_BUSY_TIMEOUT=5000"));
            if (!db.open()) {
                const QString error = errorText(db.lastError());
                db = QSqlDatabase();
                closeDatabase();
                setProblem(tr("Usage figures are not saved: the database %1 cannot be opened: %2")
                               .arg(QDir::toNativeSeparators(m_path), error));
                return false;
            }
        }
        QString reason;
        Schema schema = checkSchema(&reason);
        if (schema == Schema::Fresh && !createSchema(&reason)) {
            closeDatabase();
            setProblem(tr("Usage figures are not saved: the database %1 cannot be created: %2")
                           .arg(QDir::toNativeSeparators(m_path), reason));
            return false;
        }
        if (schema == Schema::Version1) {
            bool corrupt = false;
            if (migrateFromVersion1(&reason, &corrupt)) {
                schema = Schema::Current;
            } else if (corrupt) {
                schema = Schema::Damaged; // set aside below, as any damaged file
            } else {
                // Rolled back: the file is still schema 1 with every figure. Not set aside (the cause
                // may pass, e.g. a full disk or a lock); the next write tries again.
                closeDatabase();
                setProblem(tr("Usage figures are not saved: the database %1 cannot be upgraded: %2. It "
                              "was left as it was.")
                               .arg(QDir::toNativeSeparators(m_path), reason));
                return false;
            }
        }
        if (schema != Schema::Damaged) {
            // A write-ahead log: a commit every few seconds without waiting for the disk each time;
            // after a power cut the last commits may be missing, but the file stays consistent.
            QSqlQuery pragma(QSqlDatabase::database(m_connectionName, false));
            if (!pragma.exec(QStringLiteral("PRAGMA journal_mode = WAL"))
                || !pragma.exec(QStringLiteral("PRAGMA synchronous = NORMAL")))
                qCWarning(lcUsage).noquote()
                    << "usage database: no write-ahead log:" << errorText(pragma.lastError());
            {
                QMutexLocker lock(&m_mutex);
                m_open = true;
            }
            clearPassingProblem();
            return true;
        }
        if (!setAside(reason))
            return false;
    }
    setProblem(tr("Usage figures are not saved: a new database at %1 could not be started.")
                   .arg(QDir::toNativeSeparators(m_path)));
    return false;
}

UsageStore::Schema UsageStore::checkSchema(QString *reason)
{
    QSqlQuery query(QSqlDatabase::database(m_connectionName, false));
    if (!query.exec(QStringLiteral("PRAGMA user_version")) || !query.next()) {
        *reason = errorText(query.lastError());
        return Schema::Damaged;
    }
    const int version = query.value(0).toInt();
    if (!query.exec(QStringLiteral("PRAGMA quick_check")) || !query.next()) {
        *reason = errorText(query.lastError());
        return Schema::Damaged;
    }
    const QString check = query.value(0).toString();
    if (check != QLatin1String("ok")) {
        *reason = check;
        return Schema::Damaged;
    }
    if (version == 0) {
        if (!query.exec(QStringLiteral("SELECT count(*) FROM sqlite_master")) || !query.next()) {
            *reason = errorText(query.lastError());
            return Schema::Damaged;
        }
        if (query.value(0).toInt() != 0) {
            *reason = tr("it holds tables that are not KeyRelay's");
            return Schema::Damaged;
        }
        return Schema::Fresh;
    }
    if (version > SchemaVersion) {
        *reason = tr("it was written by a newer KeyRelay (schema %1)").arg(version);
        return Schema::Damaged;
    }
    if (version < 0) {
        *reason = tr("its schema (%1) is unknown").arg(version);
        return Schema::Damaged;
    }
    QSet<QString> columns;
    if (!query.exec(QStringLiteral("PRAGMA table_info(usage_daily)"))) {
        *reason = errorText(query.lastError());
        return Schema::Damaged;
    }
    while (query.next())
        columns.insert(query.value(1).toString());
    QStringList missing;
    for (const char *column : kColumns) {
        if (!columns.contains(QLatin1String(column)))
            missing << QLatin1String(column);
    }
    if (version >= 2 && !columns.contains(QLatin1String("provider")))
        missing << QStringLiteral("provider");
    if (!missing.isEmpty()) {
        *reason = tr("its usage table lacks the column(s) %1").arg(missing.join(QStringLiteral(", ")));
        return Schema::Damaged;
    }
    QDateTime created;
    if (query.exec(QStringLiteral("SELECT value FROM meta WHERE name = 'created'")) && query.next())
        created = QDateTime::fromString(query.value(0).toString(), Qt::ISODateWithMs);
    QMutexLocker lock(&m_mutex);
    m_createdAt = created;
    return version == 1 ? Schema::Version1 : Schema::Current;
}

bool UsageStore::createSchema(QString *error)
{
    QSqlDatabase db = QSqlDatabase::database(m_connectionName, false);
    if (!db.transaction()) {
        *error = errorText(db.lastError());
        return false;
    }
    const QDateTime created = now();
    bool ok = true;
    {
        QSqlQuery query(db);
        ok = query.exec(usageTableSql("usage_daily")) && query.exec(QLatin1String(kMetaSchema));
        if (ok) {
            ok = query.prepare(QStringLiteral("INSERT INTO meta (name, value) VALUES ('created', ?)"));
            query.addBindValue(created.toString(Qt::ISODateWithMs));
            ok = ok && query.exec();
        }
        if (ok)
            ok = query.exec(QStringLiteral("PRAGMA user_version = %1").arg(SchemaVersion));
        if (!ok)
            *error = errorText(query.lastError());
    }
    if (ok && !db.commit()) {
        *error = errorText(db.lastError());
        ok = false;
    }
    if (!ok) {
        db.rollback();
        return false;
    }
    QMutexLocker lock(&m_mutex);
    m_createdAt = created;
    return true;
}

bool UsageStore::migrateFromVersion1(QString *error, bool *corrupt)
{
    QSqlDatabase db = QSqlDatabase::database(m_connectionName, false);
    auto fail = [error, corrupt](const QSqlError &sqlError) {
        *error = errorText(sqlError);
        *corrupt = isCorruption(sqlError);
        return false;
    };
    if (!db.transaction())
        return fail(db.lastError());
    QSqlError failure;
    {
        QSqlQuery query(db);
        bool ok = query.exec(usageTableSql("usage_daily_v2"));
        for (const char *statement : kMigrateFromVersion1)
            ok = ok && query.exec(QLatin1String(statement));
        // The version lives in the file's header, which is written with the transaction.
        ok = ok && query.exec(QStringLiteral("PRAGMA user_version = %1").arg(SchemaVersion));
        if (!ok)
            failure = query.lastError();
    }
    if (!failure.isValid() && !db.commit())
        failure = db.lastError();
    if (failure.isValid()) {
        db.rollback();
        return fail(failure);
    }
    qCInfo(lcUsage).noquote() << "usage database" << QDir::toNativeSeparators(m_path) << "upgraded to schema"
                              << SchemaVersion;
    return true;
}

void UsageStore::closeDatabase()
{
    {
        QSqlDatabase db = QSqlDatabase::database(m_connectionName, false);
        if (db.isValid())
            db.close();
    }
    if (QSqlDatabase::contains(m_connectionName))
        QSqlDatabase::removeDatabase(m_connectionName);
    QMutexLocker lock(&m_mutex);
    m_open = false;
}

bool UsageStore::setAside(const QString &reason)
{
    closeDatabase();
    const QString base = m_path + QStringLiteral(".damaged-")
        + now().toLocalTime().toString(QStringLiteral("yyyyMMdd-HHmmss"));
    QString target = base;
    for (int n = 2; QFileInfo::exists(target); ++n)
        target = base + QLatin1Char('-') + QString::number(n);
    QFile file(m_path);
    if (!file.rename(target)) {
        setProblem(tr("The usage database %1 cannot be used (%2) and cannot be renamed (%3). Usage "
                      "figures are kept in memory only.")
                       .arg(QDir::toNativeSeparators(m_path), reason, file.errorString()));
        return false;
    }
    // A journal left next to the old file would be rolled into the new one.
    for (const char *suffix : { "-journal", "-wal", "-shm" }) {
        const QString sidecar = m_path + QLatin1String(suffix);
        if (QFileInfo::exists(sidecar))
            QFile::rename(sidecar, target + QLatin1String(suffix));
    }
    setProblem(tr("The usage database %1 could not be used (%2). It was renamed to %3 and a new one "
                  "was started; the figures recorded before are in the renamed file.")
                   .arg(QDir::toNativeSeparators(m_path), reason, QFileInfo(target).fileName()),
               true);
    return true;
}

bool UsageStore::writeBatch(const Batch &batch, QString *error, bool *corrupt)
{
    QSqlDatabase db = QSqlDatabase::database(m_connectionName, false);
    auto fail = [error, corrupt](const QSqlError &sqlError) {
        *error = errorText(sqlError);
        *corrupt = isCorruption(sqlError);
        return false;
    };
    if (!db.transaction())
        return fail(db.lastError());
    {
        QSqlQuery query(db);
        if (!query.prepare(QStringLiteral(
                "INSERT INTO usage_daily (day, provider, key_id, key_label, model, requests, prompt_tokens,"
                " completion_tokens, total_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (day, provider, key_id, model) DO UPDATE SET"
                " key_label = CASE WHEN excluded.key_label <> '' THEN excluded.key_label ELSE key_label END,"
                " requests = requests + excluded.requests,"
                " prompt_tokens = prompt_tokens + excluded.prompt_tokens,"
                " completion_tokens = completion_tokens + excluded.completion_tokens,"
                " total_tokens = total_tokens + excluded.total_tokens"))) {
            const QSqlError sqlError = query.lastError();
            query.finish();
            db.rollback();
            return fail(sqlError);
        }
        for (auto it = batch.cbegin(); it != batch.cend(); ++it) {
            query.bindValue(0, notNull(dayText(it.key().day)));
            query.bindValue(1, notNull(it.key().provider));
            query.bindValue(2, notNull(it.key().keyId));
            query.bindValue(3, notNull(it.value().keyLabel));
            query.bindValue(4, notNull(it.key().model));
            query.bindValue(5, it.value().requests);
            query.bindValue(6, it.value().promptTokens);
            query.bindValue(7, it.value().completionTokens);
            query.bindValue(8, it.value().totalTokens);
            if (!query.exec()) {
                const QSqlError sqlError = query.lastError();
                query.finish();
                db.rollback();
                return fail(sqlError);
            }
        }
    }
    if (!db.commit()) {
        const QSqlError sqlError = db.lastError();
        db.rollback();
        return fail(sqlError);
    }
    return true;
}

bool UsageStore::flushOnThread(QString *error)
{
    m_timer->stop();
    Batch batch;
    int events = 0;
    {
        QMutexLocker lock(&m_mutex);
        batch.swap(m_pending);
        std::swap(events, m_pendingEvents);
        m_flushQueued = false;
    }
    if (batch.isEmpty())
        return true;
    QString failure;
    bool written = false;
    if (ensureOpen()) {
        bool corrupt = false;
        written = writeBatch(batch, &failure, &corrupt);
        if (!written && corrupt && setAside(failure) && ensureOpen())
            written = writeBatch(batch, &failure, &corrupt);
        if (!written)
            setProblem(tr("Usage figures could not be saved to %1 (%2); they are kept and saved again later.")
                           .arg(QDir::toNativeSeparators(m_path), failure));
    } else {
        failure = problem();
    }
    if (!written) {
        {
            QMutexLocker lock(&m_mutex);
            merge(&m_pending, batch);
            m_pendingEvents += events;
            m_failing = true;
        }
        m_timer->start(); // try again later
        if (error)
            *error = failure;
        return false;
    }
    {
        QMutexLocker lock(&m_mutex);
        m_failing = false;
    }
    clearPassingProblem();
    QMetaObject::invokeMethod(
        this, [this] { Q_EMIT flushed(); }, Qt::QueuedConnection);
    return true;
}

void UsageStore::clearPassingProblem()
{
    {
        QMutexLocker lock(&m_mutex);
        if (m_problem.isEmpty() || m_problemLasting)
            return;
    }
    setProblem(QString());
}

void UsageStore::merge(Batch *into, const Batch &from)
{
    for (auto it = from.cbegin(); it != from.cend(); ++it) {
        PendingValue &value = (*into)[it.key()];
        if (value.keyLabel.isEmpty())
            value.keyLabel = it.value().keyLabel; // a label recorded since is newer
        value.requests += it.value().requests;
        value.promptTokens += it.value().promptTokens;
        value.completionTokens += it.value().completionTokens;
        value.totalTokens += it.value().totalTokens;
    }
}

QList<UsageRow> UsageStore::query(const QDate &from, const QDate &to, bool perDay, GroupBy by) const
{
    // Rows per (day, provider, key, model) from the file, then from the pending batch (newer, so last).
    QList<UsageRow> raw;
    if (isOpen()) {
        QSqlQuery query(QSqlDatabase::database(m_connectionName, false));
        // Without a day per row, MAX(day) makes SQLite take key_label from the latest row.
        query.prepare(
            perDay ? QStringLiteral("SELECT day, provider, key_id, key_label, model, requests,"
                                    " prompt_tokens, completion_tokens, total_tokens FROM usage_daily"
                                    " WHERE day >= ? AND day <= ?")
                   : QStringLiteral("SELECT MAX(day), provider, key_id, key_label, model, SUM(requests),"
                                    " SUM(prompt_tokens), SUM(completion_tokens), SUM(total_tokens)"
                                    " FROM usage_daily WHERE day >= ? AND day <= ?"
                                    " GROUP BY provider, key_id, model"));
        query.addBindValue(from.isValid() ? dayText(from) : QStringLiteral("0000-00-00"));
        query.addBindValue(to.isValid() ? dayText(to) : QStringLiteral("9999-99-99"));
        if (!query.exec())
            qCWarning(lcUsage).noquote() << "usage query failed:" << errorText(query.lastError());
        while (query.next()) {
            UsageRow row;
            row.day = QDate::fromString(query.value(0).toString(), Qt::ISODate);
            row.provider = query.value(1).toString();
            row.keyId = query.value(2).toString();
            row.keyLabel = query.value(3).toString();
            row.model = query.value(4).toString();
            row.requests = query.value(5).toLongLong();
            row.promptTokens = query.value(6).toLongLong();
            row.completionTokens = query.value(7).toLongLong();
            row.totalTokens = query.value(8).toLongLong();
            raw.append(row);
        }
    }
    {
        QMutexLocker lock(&m_mutex);
        for (auto it = m_pending.cbegin(); it != m_pending.cend(); ++it) {
            const QDate &day = it.key().day;
            if ((from.isValid() && day < from) || (to.isValid() && day > to))
                continue;
            UsageRow row;
            row.day = day;
            row.provider = it.key().provider;
            row.keyId = it.key().keyId;
            row.keyLabel = it.value().keyLabel;
            row.model = it.key().model;
            row.requests = it.value().requests;
            row.promptTokens = it.value().promptTokens;
            row.completionTokens = it.value().completionTokens;
            row.totalTokens = it.value().totalTokens;
            raw.append(row);
        }
    }

    // The latest label of each key (whichever provider used it), then the sums per (day, group).
    QHash<QString, std::pair<QDate, QString>> labels;
    for (const UsageRow &row : std::as_const(raw)) {
        if (row.keyLabel.isEmpty())
            continue;
        auto it = labels.find(row.keyId);
        if (it == labels.end())
            labels.insert(row.keyId, { row.day, row.keyLabel });
        else if (row.day >= it->first)
            *it = { row.day, row.keyLabel };
    }
    // The group: (provider, key id), (model) or (provider).
    std::map<std::tuple<qint64, QString, QString>, UsageRow> grouped;
    for (const UsageRow &row : std::as_const(raw)) {
        const QDate day = perDay ? row.day : QDate();
        const QString provider = by == GroupBy::Model ? QString() : row.provider;
        const QString group = by == GroupBy::Key ? row.keyId : by == GroupBy::Model ? row.model : QString();
        const auto [it, inserted]
            = grouped.try_emplace({ day.isValid() ? day.toJulianDay() : 0, provider, group });
        UsageRow &sum = it->second;
        if (inserted) {
            sum.day = day;
            switch (by) {
            case GroupBy::Key:
                sum.provider = row.provider;
                sum.keyId = row.keyId;
                sum.keyLabel = labels.value(row.keyId).second;
                break;
            case GroupBy::Model:
                sum.model = row.model;
                break;
            case GroupBy::Provider:
                sum.provider = row.provider;
                break;
            }
        }
        sum.requests += row.requests;
        sum.promptTokens += row.promptTokens;
        sum.completionTokens += row.completionTokens;
        sum.totalTokens += row.totalTokens;
    }
    QList<UsageRow> rows;
    rows.reserve(int(grouped.size()));
    for (const auto &entry : grouped)
        rows.append(entry.second);
    auto name = [by](const UsageRow &row) {
        switch (by) {
        case GroupBy::Model:
            return row.model;
        case GroupBy::Provider:
            return row.provider;
        case GroupBy::Key:
            break;
        }
        return row.keyLabel.isEmpty() ? row.keyId : row.keyLabel;
    };
    std::stable_sort(rows.begin(), rows.end(), [&name](const UsageRow &a, const UsageRow &b) {
        if (a.day != b.day)
            return a.day < b.day;
        const int order = name(a).compare(name(b), Qt::CaseInsensitive);
        if (order != 0)
            return order < 0;
        return a.keyId != b.keyId ? a.keyId < b.keyId : a.provider < b.provider;
    });
    return rows;
}

} // namespace keyrelay
