// UsageStore: batching, totals, the day boundary, restarts, damaged files set aside, concurrent writers.
#include "provider.h"
#include "usagestore.h"

#include <QDir>
#include <QFile>
#include <QSignalSpy>
#include <QSqlDatabase>
#include <QSqlQuery>
#include <QTemporaryDir>
#include <QThread>
#include <QtTest>

#include <memory>

using keyrelay::UsageEvent;
using keyrelay::UsageRow;
using keyrelay::UsageStore;
using GroupBy = keyrelay::UsageStore::GroupBy;

namespace {

UsageEvent usage(const QString &keyId, const QString &label, const QString &model, qint64 prompt,
                 qint64 completion, qint64 total)
{
    UsageEvent e;
    e.keyId = keyId;
    e.keyLabel = label;
    e.model = model;
    e.promptTokens = prompt;
    e.completionTokens = completion;
    e.totalTokens = total;
    return e;
}

/// The provider of events without one, and of every figure from schema 1.
const QString Default = QStringLiteral("default");

UsageEvent usageOf(const QString &provider, const QString &keyId, const QString &model, qint64 prompt,
                   qint64 completion, qint64 total = -1)
{
    UsageEvent e = usage(keyId, QString(), model, prompt, completion, total);
    e.provider = provider;
    return e;
}

/// A row grouped by key carries its provider (the default one unless @p provider says otherwise); one
/// grouped by model has none.
UsageRow row(const QDate &day, const QString &keyId, const QString &label, const QString &model,
             qint64 requests, qint64 prompt, qint64 completion, qint64 total,
             const QString &provider = QString())
{
    UsageRow r;
    r.day = day;
    r.provider = provider.isNull() && !keyId.isEmpty() ? Default : provider;
    r.keyId = keyId;
    r.keyLabel = label;
    r.model = model;
    r.requests = requests;
    r.promptTokens = prompt;
    r.completionTokens = completion;
    r.totalTokens = total;
    return r;
}

/// A clock the test moves by hand.
struct TestClock
{
    QDateTime now { QDate(2026, 3, 10), QTime(12, 0) };
    UsageStore::Clock clock()
    {
        return [this] {
            return now;
        };
    }
};

/// Runs @p sql against @p path through a connection of the test's own; returns the first column
/// of the first row, or -1 when the statement fails.
qint64 scalarOnDisk(const QString &path, const QString &sql)
{
    const QString name = QStringLiteral("tst-reader");
    qint64 result = -1;
    {
        QSqlDatabase db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), name);
        db.setDatabaseName(path);
        if (db.open()) {
            QSqlQuery query(db);
            if (query.exec(sql) && query.next())
                result = query.value(0).toLongLong();
        }
        db.close();
    }
    QSqlDatabase::removeDatabase(name);
    return result;
}

qint64 requestsOnDisk(const QString &path)
{
    return scalarOnDisk(path, QStringLiteral("SELECT COALESCE(SUM(requests), 0) FROM usage_daily"));
}

bool runSql(const QString &path, const QStringList &statements)
{
    const QString name = QStringLiteral("tst-writer");
    bool ok = true;
    {
        QSqlDatabase db = QSqlDatabase::addDatabase(QStringLiteral("QSQLITE"), name);
        db.setDatabaseName(path);
        ok = db.open();
        QSqlQuery query(db);
        for (const QString &statement : statements)
            ok = ok && query.exec(statement);
        query.finish();
        db.close();
    }
    QSqlDatabase::removeDatabase(name);
    return ok;
}

QByteArray readAll(const QString &path)
{
    QFile file(path);
    return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
}

bool writeAll(const QString &path, const QByteArray &data)
{
    QFile file(path);
    return file.open(QIODevice::WriteOnly | QIODevice::Truncate) && file.write(data) == data.size();
}

/// A usage file as KeyRelay wrote it with schema 1 (before providers), created 2026-03-01 09:00 UTC:
/// two keys and two models over two days.
bool writeVersion1File(const QString &path)
{
    return runSql(
        path,
        {
            QStringLiteral("CREATE TABLE usage_daily ("
                           " day TEXT NOT NULL,"
                           " key_id TEXT NOT NULL,"
                           " key_label TEXT NOT NULL DEFAULT '',"
                           " model TEXT NOT NULL DEFAULT '',"
                           " requests INTEGER NOT NULL DEFAULT 0,"
                           " prompt_tokens INTEGER NOT NULL DEFAULT 0,"
                           " completion_tokens INTEGER NOT NULL DEFAULT 0,"
                           " total_tokens INTEGER NOT NULL DEFAULT 0,"
                           " PRIMARY KEY (day, key_id, model)) WITHOUT ROWID"),
            QStringLiteral("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"),
            QStringLiteral("INSERT INTO meta (name, value) VALUES ('created', '2026-03-01T09:00:00.000Z')"),
            QStringLiteral(
                "INSERT INTO usage_daily VALUES ('2026-03-09', 'kA', 'work', 'gpt-4o', 3, 30, 15, 45)"),
            QStringLiteral(
                "INSERT INTO usage_daily VALUES ('2026-03-09', 'kB', 'spare', 'gpt-4o-mini', 1, 7, 3, 10)"),
            QStringLiteral(
                "INSERT INTO usage_daily VALUES ('2026-03-10', 'kA', 'work (new)', 'gpt-4o', 2, 20, 10, 30)"),
            QStringLiteral(
                "INSERT INTO usage_daily VALUES ('2026-03-10', 'kA', '', 'gpt-4o-mini', 5, 50, 25, 75)"),
            QStringLiteral("PRAGMA journal_mode = WAL"), // as KeyRelay left it
            QStringLiteral("PRAGMA user_version = 1"),
        });
}

qint64 columnsOnDisk(const QString &path, const QString &column)
{
    return scalarOnDisk(
        path,
        QStringLiteral("SELECT COUNT(*) FROM pragma_table_info('usage_daily') WHERE name = '%1'")
            .arg(column));
}

} // namespace

namespace keyrelay {
/// For QCOMPARE's messages.
char *toString(const UsageRow &row)
{
    return QTest::toString(
        QStringLiteral("{%1 %2 %3 %4 %5: %6 req, %7+%8=%9}")
            .arg(row.day.toString(Qt::ISODate), row.provider, row.keyId, row.keyLabel, row.model)
            .arg(row.requests)
            .arg(row.promptTokens)
            .arg(row.completionTokens)
            .arg(row.totalTokens));
}
} // namespace keyrelay

class tst_UsageStore : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void nothingWrittenBeforeFlush();
    void thresholdWritesABatch();
    void intervalWritesABatch();
    void totalsEqualWhatWasRecorded();
    void dayRollsOverWithTheClock();
    void survivesARestart();
    void damagedFileIsSetAside_data();
    void damagedFileIsSetAside();
    void unusableLocationKeepsFiguresInMemory();
    void concurrentRecordFromTwoThreads();
    void ownConnectionOnly();
    void eventFromRequestRecord();
    void clockWithoutTimeFallsBackToTheSystem();
    void migratesAVersion1File();
    void failedMigrationLeavesTheVersion1File();
    void totalsPerProvider();
    void fallbackTryIsNotARequest();
    void providersSurviveARestart();
};

void tst_UsageStore::nothingWrittenBeforeFlush()
{
    QTemporaryDir dir;
    TestClock clock;
    const QString path = dir.filePath(QStringLiteral("usage.sqlite"));
    UsageStore store(path, clock.clock());
    QVERIFY2(store.problem().isEmpty(), qPrintable(store.problem()));
    QVERIFY(store.isOpen());
    store.setFlushPolicy(60000, 1000);
    QSignalSpy flushed(&store, &UsageStore::flushed);

    for (int i = 0; i < 3; ++i)
        store.record(usage(QStringLiteral("kA"), QStringLiteral("work"), QStringLiteral("gpt-4o"), 1, 2, 3));
    QCOMPARE(store.pendingEvents(), 3);
    QCOMPARE(requestsOnDisk(path), 0);
    // Queries already include what is pending.
    QCOMPARE(store.todayTotal().requests, 3);

    QString error;
    QVERIFY2(store.flush(&error), qPrintable(error));
    QCOMPARE(store.pendingEvents(), 0);
    QCOMPARE(requestsOnDisk(path), 3);
    QCOMPARE(scalarOnDisk(path, QStringLiteral("SELECT COUNT(*) FROM usage_daily")),
             1); // one row per day/key/model
    QTRY_COMPARE(flushed.count(), 1);
    QCOMPARE(store.todayTotal().requests, 3); // not counted twice
}

void tst_UsageStore::thresholdWritesABatch()
{
    QTemporaryDir dir;
    TestClock clock;
    const QString path = dir.filePath(QStringLiteral("usage.sqlite"));
    UsageStore store(path, clock.clock());
    store.setFlushPolicy(60000, 10);
    QSignalSpy flushed(&store, &UsageStore::flushed);

    for (int i = 0; i < 9; ++i)
        store.record(usage(QStringLiteral("kA"), QString(), QStringLiteral("m%1").arg(i), 1, 1, 2));
    QCOMPARE(store.pendingEvents(), 9);
    QCOMPARE(requestsOnDisk(path), 0);
    store.record(usage(QStringLiteral("kA"), QString(), QStringLiteral("m9"), 1, 1, 2));
    QTRY_COMPARE(flushed.count(), 1);
    QCOMPARE(requestsOnDisk(path), 10);
    QCOMPARE(store.pendingEvents(), 0);
}

void tst_UsageStore::intervalWritesABatch()
{
    QTemporaryDir dir;
    TestClock clock;
    const QString path = dir.filePath(QStringLiteral("usage.sqlite"));
    UsageStore store(path, clock.clock());
    store.setFlushPolicy(50, 1000);
    QSignalSpy flushed(&store, &UsageStore::flushed);

    store.record(usage(QStringLiteral("kA"), QString(), QStringLiteral("gpt-4o"), 5, 5, 10));
    QTRY_COMPARE(flushed.count(), 1);
    QCOMPARE(requestsOnDisk(path), 1);
    QCOMPARE(scalarOnDisk(path, QStringLiteral("SELECT total_tokens FROM usage_daily")), 10);
}

void tst_UsageStore::totalsEqualWhatWasRecorded()
{
    QTemporaryDir dir;
    TestClock clock;
    UsageStore store(dir.filePath(QStringLiteral("usage.sqlite")), clock.clock());
    store.setFlushPolicy(60000, 1000);
    const QString kA = QStringLiteral("k0123456789ab");
    const QString kB = QStringLiteral("kba9876543210");
    const QString gpt4o = QStringLiteral("gpt-4o");
    const QString mini = QStringLiteral("gpt-4o-mini");

    store.record(usage(kA, QStringLiteral("work"), gpt4o, 10, 5, 15));
    store.record(usage(kA, QStringLiteral("work"), gpt4o, 10, 5, 15));
    QVERIFY(store.flush()); // half on disk, half pending: both count
    store.record(usage(kA, QStringLiteral("work (renamed)"), gpt4o, 10, 5, 15));
    store.record(usage(kA, QString(), mini, 1, 2, -1)); // total missing: prompt + completion
    store.record(usage(kB, QStringLiteral("sk-…dead"), gpt4o, -1, -1, -1)); // no usage: a request, no tokens
    store.record(usage(kB, QStringLiteral("sk-…dead"), mini, 100, 50, 150));

    const QDate today = clock.now.date();
    QCOMPARE(store.today(), today);
    const QList<UsageRow> byKey = store.totals(GroupBy::Key);
    const QList<UsageRow> expectedByKey {
        row(QDate(), kB, QStringLiteral("sk-…dead"), QString(), 2, 100, 50, 150),
        row(QDate(), kA, QStringLiteral("work (renamed)"), QString(), 4, 31, 17, 48),
    };
    QCOMPARE(byKey, expectedByKey);

    const QList<UsageRow> byModel = store.totals(GroupBy::Model);
    const QList<UsageRow> expectedByModel {
        row(QDate(), QString(), QString(), gpt4o, 4, 30, 15, 45),
        row(QDate(), QString(), QString(), mini, 2, 101, 52, 153),
    };
    QCOMPARE(byModel, expectedByModel);

    QList<UsageRow> dailyByKey = expectedByKey;
    for (UsageRow &r : dailyByKey)
        r.day = today;
    QCOMPARE(store.daily(30, GroupBy::Key), dailyByKey);
    QCOMPARE(store.forDay(today, GroupBy::Key), dailyByKey);
    QVERIFY(store.forDay(today.addDays(-1), GroupBy::Key).isEmpty());

    const UsageRow total = store.todayTotal();
    QCOMPARE(total, row(today, QString(), QString(), QString(), 6, 131, 67, 198));

    // The same figures once everything is on disk.
    QVERIFY(store.flush());
    QCOMPARE(store.totals(GroupBy::Key), expectedByKey);
    QCOMPARE(store.totals(GroupBy::Model), expectedByModel);
    QCOMPARE(store.todayTotal(), total);
}

void tst_UsageStore::dayRollsOverWithTheClock()
{
    QTemporaryDir dir;
    TestClock clock;
    clock.now = QDateTime(QDate(2026, 3, 10), QTime(23, 59, 50));
    UsageStore store(dir.filePath(QStringLiteral("usage.sqlite")), clock.clock());
    const QString kA = QStringLiteral("kA");
    const QString model = QStringLiteral("gpt-4o");

    store.record(usage(kA, QStringLiteral("work"), model, 3, 5, 8));
    QVERIFY(store.flush());
    clock.now = QDateTime(QDate(2026, 3, 10), QTime(23, 59, 59, 999)); // the last millisecond of the day
    store.record(usage(kA, QStringLiteral("work"), model, 1, 1, 2));
    clock.now = QDateTime(QDate(2026, 3, 11), QTime(0, 0)); // the first of the next
    store.record(usage(kA, QStringLiteral("work"), model, 8, 12, 20));
    clock.now = QDateTime(QDate(2026, 3, 10), QTime(12, 0)); // a clock set back books on its own day
    store.record(usage(kA, QStringLiteral("work"), model, 0, 0, 0));
    clock.now = QDateTime(QDate(2026, 3, 11), QTime(0, 0, 5));

    const QDate first(2026, 3, 10);
    const QDate second(2026, 3, 11);
    QCOMPARE(store.today(), second);
    const QList<UsageRow> expected {
        row(first, kA, QStringLiteral("work"), QString(), 3, 4, 6, 10),
        row(second, kA, QStringLiteral("work"), QString(), 1, 8, 12, 20),
    };
    QCOMPARE(store.daily(30, GroupBy::Key), expected);
    QCOMPARE(store.daily(1, GroupBy::Key), QList<UsageRow> { expected.at(1) });
    QCOMPARE(store.todayTotal().totalTokens, 20);
    QCOMPARE(store.forDay(first, GroupBy::Model),
             QList<UsageRow> { row(first, QString(), QString(), model, 3, 4, 6, 10) });

    // Thirty days later both days have left the 30-day window, but not the totals.
    clock.now = QDateTime(QDate(2026, 4, 10), QTime(12, 0));
    QVERIFY(store.daily(30, GroupBy::Key).isEmpty());
    QCOMPARE(store.todayTotal().requests, 0);
    QCOMPARE(store.totals(GroupBy::Key).value(0).totalTokens, 30);
}

void tst_UsageStore::survivesARestart()
{
    QTemporaryDir dir;
    TestClock clock;
    const QString path = dir.filePath(QStringLiteral("usage.sqlite"));
    const QDateTime created = clock.now;
    {
        UsageStore store(path, clock.clock());
        store.setFlushPolicy(60000, 1000);
        store.record(usage(QStringLiteral("kA"), QStringLiteral("work"), QStringLiteral("gpt-4o"), 3, 4, 7));
        store.record(usage(QStringLiteral("kB"), QString(), QStringLiteral("gpt-4o"), 1, 1, 2));
        QCOMPARE(requestsOnDisk(path), 0);
        QCOMPARE(store.createdAt(), created);
    } // the destructor writes the batch
    QCOMPARE(requestsOnDisk(path), 2);

    clock.now = clock.now.addDays(1);
    UsageStore store(path, clock.clock());
    QVERIFY2(store.problem().isEmpty(), qPrintable(store.problem()));
    QCOMPARE(store.createdAt(), created);
    const QList<UsageRow> totals = store.totals(GroupBy::Key);
    QCOMPARE(totals.size(), 2);
    QCOMPARE(totals.at(0), row(QDate(), QStringLiteral("kB"), QString(), QString(), 1, 1, 1, 2));
    QCOMPARE(totals.at(1), row(QDate(), QStringLiteral("kA"), QStringLiteral("work"), QString(), 1, 3, 4, 7));
    QCOMPARE(store.daily(30, GroupBy::Model).value(0).day, created.date());
}

void tst_UsageStore::damagedFileIsSetAside_data()
{
    QTest::addColumn<QString>("kind");
    QTest::newRow("not a database") << QStringLiteral("garbage");
    QTest::newRow("truncated") << QStringLiteral("truncated");
    QTest::newRow("header only") << QStringLiteral("header");
    QTest::newRow("foreign tables") << QStringLiteral("foreign");
    QTest::newRow("missing columns") << QStringLiteral("columns");
    QTest::newRow("schema 2 without provider") << QStringLiteral("columns2");
    QTest::newRow("newer schema") << QStringLiteral("newer");
}

void tst_UsageStore::damagedFileIsSetAside()
{
    QFETCH(QString, kind);
    QTemporaryDir dir;
    TestClock clock;
    const QString path = dir.filePath(QStringLiteral("usage.sqlite"));

    if (kind == QLatin1String("garbage")) {
        QVERIFY(writeAll(path, QByteArray("this is not an SQLite database, just text\n").repeated(200)));
    } else if (kind == QLatin1String("truncated") || kind == QLatin1String("header")) {
        {
            UsageStore store(path, clock.clock());
            for (int i = 0; i < 3000; ++i)
                store.record(usage(QStringLiteral("k%1").arg(i), QStringLiteral("label %1").arg(i),
                                   QStringLiteral("model-%1").arg(i), i, i, 2 * i));
        }
        const QByteArray full = readAll(path);
        QVERIFY2(full.size() > 64 * 1024, QByteArray::number(full.size()).constData());
        QVERIFY(writeAll(path, full.left(kind == QLatin1String("header") ? 50 : full.size() / 2)));
    } else if (kind == QLatin1String("foreign")) {
        QVERIFY(runSql(path,
                       { QStringLiteral("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)"),
                         QStringLiteral("INSERT INTO notes (text) VALUES ('hello')") }));
    } else if (kind == QLatin1String("columns")) {
        QVERIFY(runSql(path,
                       { QStringLiteral("CREATE TABLE usage_daily (day TEXT, requests INTEGER)"),
                         QStringLiteral("PRAGMA user_version = 1") }));
    } else if (kind == QLatin1String("columns2")) {
        QVERIFY(writeVersion1File(path));
        QVERIFY(runSql(path, { QStringLiteral("PRAGMA user_version = 2") }));
    } else if (kind == QLatin1String("newer")) {
        QVERIFY(runSql(path,
                       { QStringLiteral("CREATE TABLE usage_daily (day TEXT)"),
                         QStringLiteral("PRAGMA user_version = 99") }));
    }
    const QByteArray original = readAll(path);
    QVERIFY(!original.isEmpty());

    clock.now = QDateTime(QDate(2026, 5, 1), QTime(9, 8, 7));
    UsageStore store(path, clock.clock());
    const QString aside = path + QStringLiteral(".damaged-20260501-090807");
    QVERIFY2(QFile::exists(aside), qPrintable(QDir(dir.path()).entryList().join(QLatin1Char(' '))));
    QCOMPARE(readAll(aside), original); // set aside untouched, never deleted
    QVERIFY(store.problem().contains(QStringLiteral("usage.sqlite.damaged-20260501-090807")));
    QVERIFY(store.isOpen());

    // The new database works; the notice stays, so the user learns where the old figures are.
    store.record(usage(QStringLiteral("kA"), QString(), QStringLiteral("gpt-4o"), 1, 2, 3));
    QVERIFY(store.flush());
    QVERIFY(store.problem().contains(QStringLiteral("usage.sqlite.damaged-20260501-090807")));
    QCOMPARE(requestsOnDisk(path), 1);
    QCOMPARE(scalarOnDisk(path, QStringLiteral("PRAGMA user_version")), UsageStore::SchemaVersion);
    QCOMPARE(store.totals(GroupBy::Key).size(), 1);
}

void tst_UsageStore::unusableLocationKeepsFiguresInMemory()
{
    QTemporaryDir dir;
    TestClock clock;
    // A regular file where the folder should be: the database can neither be created nor opened.
    const QString blocker = dir.filePath(QStringLiteral("blocker"));
    QVERIFY(writeAll(blocker, "x"));
    UsageStore store(blocker + QStringLiteral("/usage.sqlite"), clock.clock());
    QVERIFY(!store.isOpen());
    QVERIFY(!store.problem().isEmpty());
    QVERIFY(store.problem().contains(QStringLiteral("blocker")));

    store.record(usage(QStringLiteral("kA"), QString(), QStringLiteral("gpt-4o"), 1, 2, 3));
    QString error;
    QVERIFY(!store.flush(&error));
    QVERIFY(!error.isEmpty());
    QCOMPARE(store.pendingEvents(), 1); // kept for a later attempt
    QCOMPARE(store.todayTotal().totalTokens, 3);

    // Once the folder can be made, the next write succeeds and the problem goes away.
    QSignalSpy problemChanged(&store, &UsageStore::problemChanged);
    QVERIFY(QFile::remove(blocker));
    QVERIFY2(store.flush(&error), qPrintable(error));
    QVERIFY(store.isOpen());
    QCOMPARE(store.problem(), QString());
    QCOMPARE(store.pendingEvents(), 0);
    QCOMPARE(requestsOnDisk(blocker + QStringLiteral("/usage.sqlite")), 1);
    QTRY_VERIFY(!problemChanged.isEmpty() && problemChanged.last().first().toString().isEmpty());
}

void tst_UsageStore::concurrentRecordFromTwoThreads()
{
    QTemporaryDir dir;
    TestClock clock;
    const QString path = dir.filePath(QStringLiteral("usage.sqlite"));
    UsageStore store(path, clock.clock());
    store.setFlushPolicy(5, 100); // flushes run while the threads record
    constexpr int perThread = 5000;
    auto writer = [&store](const QString &keyId) {
        for (int i = 0; i < perThread; ++i)
            store.record(usage(keyId, keyId, QStringLiteral("model-%1").arg(i % 3), 1, 2, 3));
    };
    std::unique_ptr<QThread> a(QThread::create(writer, QStringLiteral("kA")));
    std::unique_ptr<QThread> b(QThread::create(writer, QStringLiteral("kB")));
    a->start();
    b->start();
    QVERIFY(a->wait(60000));
    QVERIFY(b->wait(60000));
    QVERIFY(store.flush());

    QCOMPARE(requestsOnDisk(path), 2 * perThread);
    const QList<UsageRow> totals = store.totals(GroupBy::Key);
    QCOMPARE(totals.size(), 2);
    for (const UsageRow &r : totals) {
        QCOMPARE(r.requests, perThread);
        QCOMPARE(r.promptTokens, perThread);
        QCOMPARE(r.completionTokens, 2 * perThread);
        QCOMPARE(r.totalTokens, 3 * perThread);
    }
}

void tst_UsageStore::ownConnectionOnly()
{
    QTemporaryDir dir;
    TestClock clock;
    {
        UsageStore one(dir.filePath(QStringLiteral("one.sqlite")), clock.clock());
        UsageStore two(dir.filePath(QStringLiteral("two.sqlite")), clock.clock());
        one.record(usage(QStringLiteral("kA"), QString(), QStringLiteral("m"), 1, 1, 2));
        QVERIFY(one.flush());
        QVERIFY(two.flush());
        QCOMPARE(requestsOnDisk(dir.filePath(QStringLiteral("one.sqlite"))), 1);
        QCOMPARE(requestsOnDisk(dir.filePath(QStringLiteral("two.sqlite"))), 0);
        QVERIFY(!QSqlDatabase::contains(QLatin1String(QSqlDatabase::defaultConnection)));
    }
    QVERIFY(QSqlDatabase::connectionNames().isEmpty()); // each store removed its connection
    QCOMPARE(UsageStore::pathNextTo(QStringLiteral("/home/u/.config/KeyRelay/KeyRelay.ini")),
             QStringLiteral("/home/u/.config/KeyRelay/usage.sqlite"));
}

void tst_UsageStore::eventFromRequestRecord()
{
    keyrelay::RequestRecord record;
    record.keyId = QStringLiteral("k0123456789ab");
    record.keyLabel = QStringLiteral("sk-…a1b2");
    record.model = QStringLiteral("gpt-4o");
    record.promptTokens = 11;
    record.completionTokens = 22;
    record.totalTokens = 33;
    const UsageEvent e = UsageEvent::fromRecord(record);
    QCOMPARE(e.keyId, record.keyId);
    QCOMPARE(e.keyLabel, record.keyLabel);
    QCOMPARE(e.model, record.model);
    QCOMPARE(e.promptTokens, 11);
    QCOMPARE(e.completionTokens, 22);
    QCOMPARE(e.totalTokens, 33);
    QCOMPARE(UsageEvent::fromRecord(keyrelay::RequestRecord()).totalTokens, -1); // unknown stays unknown
    QCOMPARE(e.provider, Default); // a configuration without providers
    QCOMPARE(Default, QLatin1String(keyrelay::ProviderConfig::DefaultId)); // the provider it becomes
    QVERIFY(!e.fellBack);
    record.provider = QStringLiteral("deepseek");
    record.fellBack = true;
    QCOMPARE(UsageEvent::fromRecord(record).provider, QStringLiteral("deepseek"));
    QVERIFY(UsageEvent::fromRecord(record).fellBack);
}

void tst_UsageStore::clockWithoutTimeFallsBackToTheSystem()
{
    QTemporaryDir dir;
    const QString path = dir.filePath(QStringLiteral("usage.sqlite"));
    UsageStore store(path, [] { return QDateTime(); });
    QVERIFY2(store.problem().isEmpty(), qPrintable(store.problem()));
    QVERIFY(store.createdAt().isValid());
    QVERIFY(store.today().isValid());
    store.record(usage(QStringLiteral("kA"), QString(), QStringLiteral("m"), 1, 1, 2));
    QVERIFY(store.flush());
    QCOMPARE(scalarOnDisk(path, QStringLiteral("SELECT COUNT(*) FROM usage_daily WHERE length(day) = 10")),
             1);
}

void tst_UsageStore::migratesAVersion1File()
{
    QTemporaryDir dir;
    TestClock clock; // 2026-03-10
    const QString path = dir.filePath(QStringLiteral("usage.sqlite"));
    QVERIFY(writeVersion1File(path));
    QCOMPARE(requestsOnDisk(path), 11);
    const QDate first(2026, 3, 9);
    const QDate second(2026, 3, 10);
    const QString gpt4o = QStringLiteral("gpt-4o");
    const QString mini = QStringLiteral("gpt-4o-mini");
    const QList<UsageRow> byKey {
        row(QDate(), QStringLiteral("kB"), QStringLiteral("spare"), QString(), 1, 7, 3, 10),
        row(QDate(), QStringLiteral("kA"), QStringLiteral("work (new)"), QString(), 10, 100, 50, 150),
    };
    const QList<UsageRow> byModel {
        row(QDate(), QString(), QString(), gpt4o, 5, 50, 25, 75),
        row(QDate(), QString(), QString(), mini, 6, 57, 28, 85),
    };
    const QList<UsageRow> dailyByKey {
        row(first, QStringLiteral("kB"), QStringLiteral("spare"), QString(), 1, 7, 3, 10),
        row(first, QStringLiteral("kA"), QStringLiteral("work (new)"), QString(), 3, 30, 15, 45),
        row(second, QStringLiteral("kA"), QStringLiteral("work (new)"), QString(), 7, 70, 35, 105),
    };
    {
        UsageStore store(path, clock.clock());
        QVERIFY2(store.problem().isEmpty(), qPrintable(store.problem()));
        QVERIFY(store.isOpen());
        QCOMPARE(store.createdAt(), QDateTime(QDate(2026, 3, 1), QTime(9, 0), Qt::UTC));
        QCOMPARE(scalarOnDisk(path, QStringLiteral("PRAGMA user_version")), 2);
        QCOMPARE(columnsOnDisk(path, QStringLiteral("provider")), 1);
        QCOMPARE(
            scalarOnDisk(path, QStringLiteral("SELECT COUNT(*) FROM usage_daily WHERE provider = 'default'")),
            4);
        QCOMPARE(
            scalarOnDisk(path,
                         QStringLiteral("SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'usage_daily%'")),
            1); // the old table is gone, the new one has its name
        QCOMPARE(requestsOnDisk(path), 11);

        // The figures are those of schema 1, every one with the default provider.
        QCOMPARE(store.totals(GroupBy::Key), byKey);
        QCOMPARE(store.totals(GroupBy::Model), byModel);
        QCOMPARE(store.daily(30, GroupBy::Key), dailyByKey);
        QCOMPARE(store.forDay(first, GroupBy::Model),
                 (QList<UsageRow> { row(first, QString(), QString(), gpt4o, 3, 30, 15, 45),
                                    row(first, QString(), QString(), mini, 1, 7, 3, 10) }));
        QCOMPARE(
            store.totals(GroupBy::Provider),
            QList<UsageRow> { row(QDate(), QString(), QString(), QString(), 11, 107, 53, 160, Default) });
        QCOMPARE(store.todayTotal(), row(second, QString(), QString(), QString(), 7, 70, 35, 105));

        // A new request of the default provider adds to a migrated row; another provider's has its own.
        store.record(usage(QStringLiteral("kA"), QString(), gpt4o, 1, 1, 2));
        store.record(usageOf(QStringLiteral("openai"), QStringLiteral("kA"), gpt4o, 4, 4));
        QVERIFY(store.flush());
        QCOMPARE(
            scalarOnDisk(path,
                         QStringLiteral("SELECT requests FROM usage_daily WHERE day = '2026-03-10'"
                                        " AND provider = 'default' AND key_id = 'kA' AND model = 'gpt-4o'")),
            3);
        QCOMPARE(scalarOnDisk(path, QStringLiteral("SELECT COUNT(*) FROM usage_daily")), 5);
    }
    // Opened again: already schema 2, nothing migrated twice.
    UsageStore store(path, clock.clock());
    QVERIFY2(store.problem().isEmpty(), qPrintable(store.problem()));
    QCOMPARE(requestsOnDisk(path), 13);
    QCOMPARE(store.totals(GroupBy::Provider),
             (QList<UsageRow> {
                 row(QDate(), QString(), QString(), QString(), 12, 108, 54, 162, Default),
                 row(QDate(), QString(), QString(), QString(), 1, 4, 4, 8, QStringLiteral("openai")) }));
}

void tst_UsageStore::failedMigrationLeavesTheVersion1File()
{
    // The last step of the upgrade (the rename) fails on a view of the old table: everything before it
    // (the copy, the drop) must be rolled back, as after a crash in the middle.
    QTemporaryDir dir;
    TestClock clock;
    const QString path = dir.filePath(QStringLiteral("usage.sqlite"));
    QVERIFY(writeVersion1File(path));
    QVERIFY(runSql(path, { QStringLiteral("CREATE VIEW mine AS SELECT day, requests FROM usage_daily") }));
    const qint64 before = scalarOnDisk(path, QStringLiteral("SELECT COUNT(*) FROM usage_daily"));
    QCOMPARE(before, 4);

    UsageStore store(path, clock.clock());
    QVERIFY(!store.isOpen());
    QVERIFY2(store.problem().contains(QStringLiteral("cannot be upgraded")), qPrintable(store.problem()));
    QVERIFY(store.problem().contains(QStringLiteral("mine")));
    QCOMPARE(QDir(dir.path()).entryList({ QStringLiteral("*.damaged-*") }), QStringList()); // not set aside
    QCOMPARE(scalarOnDisk(path, QStringLiteral("PRAGMA user_version")), 1);
    QCOMPARE(columnsOnDisk(path, QStringLiteral("provider")), 0);
    QCOMPARE(columnsOnDisk(path, QStringLiteral("key_id")), 1);
    QCOMPARE(scalarOnDisk(path,
                          QStringLiteral("SELECT COUNT(*) FROM sqlite_master WHERE name = 'usage_daily_v2'")),
             0);
    QCOMPARE(scalarOnDisk(path, QStringLiteral("SELECT COUNT(*) FROM usage_daily")), before);
    QCOMPARE(requestsOnDisk(path), 11);
    QCOMPARE(scalarOnDisk(path, QStringLiteral("SELECT SUM(total_tokens) FROM usage_daily")), 160);
    QCOMPARE(
        scalarOnDisk(path,
                     QStringLiteral("SELECT COUNT(*) FROM usage_daily WHERE day = '2026-03-10'"
                                    " AND key_id = 'kA' AND key_label = 'work (new)' AND model = 'gpt-4o'"
                                    " AND requests = 2 AND prompt_tokens = 20")),
        1);

    // Meanwhile the figures stay in memory; once the obstacle is gone the next write upgrades the file.
    store.record(usage(QStringLiteral("kA"), QString(), QStringLiteral("gpt-4o"), 1, 1, 2));
    QVERIFY(!store.flush());
    QCOMPARE(store.pendingEvents(), 1);
    QCOMPARE(requestsOnDisk(path), 11);
    QVERIFY(runSql(path, { QStringLiteral("DROP VIEW mine") }));
    QString error;
    QVERIFY2(store.flush(&error), qPrintable(error));
    QVERIFY(store.isOpen());
    QCOMPARE(store.problem(), QString());
    QCOMPARE(scalarOnDisk(path, QStringLiteral("PRAGMA user_version")), 2);
    QCOMPARE(requestsOnDisk(path), 12);
    QCOMPARE(store.totals(GroupBy::Provider).value(0).totalTokens, 162);
}

void tst_UsageStore::totalsPerProvider()
{
    QTemporaryDir dir;
    TestClock clock;
    UsageStore store(dir.filePath(QStringLiteral("usage.sqlite")), clock.clock());
    store.setFlushPolicy(60000, 1000);
    const QString openai = QStringLiteral("openai");
    const QString deepseek = QStringLiteral("deepseek");
    const QString claude = QStringLiteral("claude");
    const QString gpt = QStringLiteral("gpt-4o");
    const QString chat = QStringLiteral("deepseek-chat");
    const QString sonnet = QStringLiteral("claude-sonnet-4");
    const QDate yesterday = clock.now.date().addDays(-1);
    const QDate today = clock.now.date();

    clock.now = clock.now.addDays(-1);
    store.record(usageOf(openai, QStringLiteral("kO"), gpt, 10, 5));
    store.record(usageOf(deepseek, QStringLiteral("kD"), chat, 100, 50));
    QVERIFY(store.flush()); // yesterday on disk, today pending: both count
    clock.now = clock.now.addDays(1);
    store.record(usageOf(openai, QStringLiteral("kO"), gpt, 1, 2));
    store.record(usageOf(openai, QStringLiteral("kO"), gpt, 1, 2));
    store.record(usageOf(claude, QStringLiteral("kC"), sonnet, 7, 3));
    // One key used by two providers (a shared pool): a row for each.
    store.record(usageOf(deepseek, QStringLiteral("kShared"), chat, 20, 0));
    store.record(usageOf(claude, QStringLiteral("kShared"), sonnet, 30, 0));
    store.record(usageOf(QString(), QStringLiteral("kX"), gpt, 1, 1)); // no provider: the default one

    const auto checkAll = [&] {
        QCOMPARE(store.totals(GroupBy::Provider),
                 (QList<UsageRow> {
                     row(QDate(), QString(), QString(), QString(), 2, 37, 3, 40, claude),
                     row(QDate(), QString(), QString(), QString(), 2, 120, 50, 170, deepseek),
                     row(QDate(), QString(), QString(), QString(), 1, 1, 1, 2, Default),
                     row(QDate(), QString(), QString(), QString(), 3, 12, 9, 21, openai),
                 }));
        QCOMPARE(store.daily(30, GroupBy::Provider),
                 (QList<UsageRow> {
                     row(yesterday, QString(), QString(), QString(), 1, 100, 50, 150, deepseek),
                     row(yesterday, QString(), QString(), QString(), 1, 10, 5, 15, openai),
                     row(today, QString(), QString(), QString(), 2, 37, 3, 40, claude),
                     row(today, QString(), QString(), QString(), 1, 20, 0, 20, deepseek),
                     row(today, QString(), QString(), QString(), 1, 1, 1, 2, Default),
                     row(today, QString(), QString(), QString(), 2, 2, 4, 6, openai),
                 }));
        QCOMPARE(store.forDay(yesterday, GroupBy::Provider),
                 (QList<UsageRow> {
                     row(yesterday, QString(), QString(), QString(), 1, 100, 50, 150, deepseek),
                     row(yesterday, QString(), QString(), QString(), 1, 10, 5, 15, openai),
                 }));
        QCOMPARE(store.totals(GroupBy::Key),
                 (QList<UsageRow> {
                     row(QDate(), QStringLiteral("kC"), QString(), QString(), 1, 7, 3, 10, claude),
                     row(QDate(), QStringLiteral("kD"), QString(), QString(), 1, 100, 50, 150, deepseek),
                     row(QDate(), QStringLiteral("kO"), QString(), QString(), 3, 12, 9, 21, openai),
                     row(QDate(), QStringLiteral("kShared"), QString(), QString(), 1, 30, 0, 30, claude),
                     row(QDate(), QStringLiteral("kShared"), QString(), QString(), 1, 20, 0, 20, deepseek),
                     row(QDate(), QStringLiteral("kX"), QString(), QString(), 1, 1, 1, 2, Default),
                 }));
        // By model: summed over providers and keys, without a provider.
        QCOMPARE(store.forDay(today, GroupBy::Model),
                 (QList<UsageRow> {
                     row(today, QString(), QString(), sonnet, 2, 37, 3, 40),
                     row(today, QString(), QString(), chat, 1, 20, 0, 20),
                     row(today, QString(), QString(), gpt, 3, 3, 5, 8),
                 }));
        QCOMPARE(store.todayTotal(), row(today, QString(), QString(), QString(), 6, 60, 8, 68));
    };
    checkAll();
    QVERIFY(store.flush());
    checkAll();
    QCOMPARE(scalarOnDisk(store.path(), QStringLiteral("SELECT COUNT(DISTINCT provider) FROM usage_daily")),
             4);
}

void tst_UsageStore::fallbackTryIsNotARequest()
{
    QTemporaryDir dir;
    TestClock clock;
    const QString path = dir.filePath(QStringLiteral("usage.sqlite"));
    UsageStore store(path, clock.clock());
    store.setFlushPolicy(60000, 1000);

    // openai fails before the first byte (a 503), deepseek answers: the client made one request.
    keyrelay::RequestRecord tried;
    tried.provider = QStringLiteral("openai");
    tried.keyId = QStringLiteral("kO");
    tried.model = QStringLiteral("gpt-4o");
    tried.status = 503;
    tried.fellBack = true;
    keyrelay::RequestRecord served = tried;
    served.provider = QStringLiteral("deepseek");
    served.keyId = QStringLiteral("kD");
    served.status = 200;
    served.fellBack = false;
    served.promptTokens = 12;
    served.completionTokens = 8;
    served.totalTokens = 20;

    store.record(UsageEvent::fromRecord(tried));
    QCOMPARE(store.pendingEvents(), 0); // nothing booked at all
    store.record(UsageEvent::fromRecord(served));
    QCOMPARE(store.todayTotal().requests, 1);
    QCOMPARE(store.totals(GroupBy::Provider),
             QList<UsageRow> {
                 row(QDate(), QString(), QString(), QString(), 1, 12, 8, 20, QStringLiteral("deepseek")) });
    QCOMPARE(store.totals(GroupBy::Key).size(), 1);

    // A fallen-back try that did report tokens (none does today) books them, still not as a request.
    tried.promptTokens = 5;
    store.record(UsageEvent::fromRecord(tried));
    QVERIFY(store.flush());
    QCOMPARE(requestsOnDisk(path), 1);
    QCOMPARE(store.todayTotal(), row(clock.now.date(), QString(), QString(), QString(), 1, 17, 8, 25));
    QCOMPARE(store.totals(GroupBy::Provider).value(1),
             row(QDate(), QString(), QString(), QString(), 0, 5, 0, 5, QStringLiteral("openai")));
}

void tst_UsageStore::providersSurviveARestart()
{
    QTemporaryDir dir;
    TestClock clock;
    const QString path = dir.filePath(QStringLiteral("usage.sqlite"));
    const QList<UsageRow> byKey {
        row(QDate(), QStringLiteral("kC"), QString(), QString(), 1, 3, 4, 7, QStringLiteral("claude")),
        row(QDate(), QStringLiteral("kO"), QString(), QString(), 2, 2, 2, 4, QStringLiteral("openai")),
    };
    {
        UsageStore store(path, clock.clock());
        store.record(
            usageOf(QStringLiteral("claude"), QStringLiteral("kC"), QStringLiteral("claude-sonnet-4"), 3, 4));
        store.record(usageOf(QStringLiteral("openai"), QStringLiteral("kO"), QStringLiteral("gpt-4o"), 1, 1));
        store.record(usageOf(QStringLiteral("openai"), QStringLiteral("kO"), QStringLiteral("gpt-4o"), 1, 1));
        QCOMPARE(store.totals(GroupBy::Key), byKey);
    } // the destructor writes the batch
    QCOMPARE(scalarOnDisk(path, QStringLiteral("PRAGMA user_version")), UsageStore::SchemaVersion);
    QCOMPARE(scalarOnDisk(path, QStringLiteral("SELECT requests FROM usage_daily WHERE provider = 'openai'")),
             2);

    clock.now = clock.now.addDays(1);
    UsageStore store(path, clock.clock());
    QVERIFY2(store.problem().isEmpty(), qPrintable(store.problem()));
    QCOMPARE(store.totals(GroupBy::Key), byKey);
    QCOMPARE(store.totals(GroupBy::Provider),
             (QList<UsageRow> {
                 row(QDate(), QString(), QString(), QString(), 1, 3, 4, 7, QStringLiteral("claude")),
                 row(QDate(), QString(), QString(), QString(), 2, 2, 2, 4, QStringLiteral("openai")) }));
    QCOMPARE(store.forDay(clock.now.date().addDays(-1), GroupBy::Provider).size(), 2);
}

QTEST_GUILESS_MAIN(tst_UsageStore)
#include "tst_usagestore.moc"
