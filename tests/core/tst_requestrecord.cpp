// Unit tests of RequestRecord::toLogLine: every field is there, and the key only ever as its label.
#include "keypool.h"
#include "requestrecord.h"

#include <QtTest>

using keyrelay::KeyPool;
using keyrelay::RequestRecord;

namespace {

RequestRecord fullRecord()
{
    RequestRecord record;
    record.id = 7;
    record.startedAt = QDateTime(QDate(2026, 11, 27), QTime(12, 0, 0, 123), Qt::UTC);
    record.method = QStringLiteral("POST");
    record.path = QStringLiteral("/v1/chat/completions?x=1");
    record.model = QStringLiteral("gpt-4o");
    record.keyLabel = QStringLiteral("work");
    record.status = 200;
    record.latencyMs = 123;
    record.durationMs = 4567;
    record.requestBytes = 2048;
    record.responseBytes = 8192;
    record.promptTokens = 10;
    record.completionTokens = 20;
    record.totalTokens = 30;
    return record;
}

} // namespace

class tst_RequestRecord : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void fullLine();
    void allFlags();
    void defaults();
    void partialTokens();
    void errorIsQuoted();
    void keyOnlyAsLabel();
    void percentSignsInFields();
    void metaType();
    void percentSignsInPathAreKept();
    void alwaysOneLine();
};

void tst_RequestRecord::fullLine()
{
    const QString line = fullRecord().toLogLine();
    QCOMPARE(line,
             QStringLiteral("2026-11-27T12:00:00.123Z POST /v1/chat/completions?x=1 model=gpt-4o key=work "
                            "status=200 latency=123ms time=4567ms in=2048B out=8192B tokens=10+20=30"));
    QVERIFY(!line.contains(QLatin1Char('\n')));
}

void tst_RequestRecord::allFlags()
{
    RequestRecord record = fullRecord();
    record.streamed = true;
    record.rewritten = true;
    record.attempts = 3;
    record.status = 502;
    record.error = QStringLiteral("upstream closed the connection");
    const QString line = record.toLogLine();
    QVERIFY2(line.startsWith(QLatin1String("2026-11-27T12:00:00.123Z POST /v1/chat/completions?x=1 ")),
             qPrintable(line));
    QVERIFY2(line.contains(QLatin1String(" status=502 ")), qPrintable(line));
    QVERIFY2(line.endsWith(QLatin1String(" tokens=10+20=30 stream reordered attempts=3 "
                                         "error=\"upstream closed the connection\"")),
             qPrintable(line));

    record.attempts = 1;
    record.streamed = false;
    QVERIFY(!record.toLogLine().contains(QLatin1String("attempts")));
    QVERIFY(!record.toLogLine().contains(QLatin1String(" stream")));
}

void tst_RequestRecord::defaults()
{
    RequestRecord record;
    record.method = QStringLiteral("GET");
    record.path = QStringLiteral("/v1/models");
    const QString line = record.toLogLine();
    QVERIFY2(line.contains(
                 QLatin1String(" GET /v1/models model=- key=- status=0 latency=-1ms time=0ms in=0B out=0B "
                               "tokens=-")),
             qPrintable(line));
    QVERIFY(line.endsWith(QLatin1String("tokens=-")));
    QVERIFY(!line.contains(QLatin1String("error=")));
    QVERIFY(!line.contains(QLatin1String("reordered")));
}

void tst_RequestRecord::partialTokens()
{
    RequestRecord record = fullRecord();
    record.completionTokens = -1;
    record.totalTokens = 8;
    record.promptTokens = 8;
    QVERIFY2(record.toLogLine().endsWith(QLatin1String(" tokens=8+?=8")), qPrintable(record.toLogLine()));
    record.promptTokens = -1;
    QVERIFY2(record.toLogLine().endsWith(QLatin1String(" tokens=?+?=8")), qPrintable(record.toLogLine()));
    record.totalTokens = -1;
    record.promptTokens = 5;
    QVERIFY2(record.toLogLine().endsWith(QLatin1String(" tokens=-")), qPrintable(record.toLogLine()));
}

void tst_RequestRecord::errorIsQuoted()
{
    RequestRecord record = fullRecord();
    record.status = 0;
    record.error = QStringLiteral("client went away");
    QVERIFY(record.toLogLine().endsWith(QLatin1String(" error=\"client went away\"")));
    QVERIFY(record.toLogLine().contains(QLatin1String(" status=0 ")));
}

void tst_RequestRecord::keyOnlyAsLabel()
{
    // The record of a request is filled from a lease: only its label may reach the log.
    const QString secret = QStringLiteral("sk-proj-SECRETmiddlePARTnobodyMaySee0123a1b2");
    KeyPool pool;
    pool.setKeys({ keyrelay::ApiKey { secret, QString(), true } });
    const keyrelay::KeyLease lease = pool.acquireFor({}, QString());
    QCOMPARE(lease.secret, secret);

    RequestRecord record = fullRecord();
    record.keyLabel = lease.label;
    const QString line = record.toLogLine();
    QVERIFY2(line.contains(QStringLiteral(" key=sk-") + QChar(0x2026) + QStringLiteral("a1b2 ")),
             qPrintable(line));
    QVERIFY(!line.contains(secret));
    for (int i = 0; i + 5 <= secret.size(); ++i)
        QVERIFY2(!line.contains(secret.mid(i, 5)), qPrintable(secret.mid(i, 5)));

    // Pass-through mode: the client's key is masked the same way.
    KeyPool passThrough;
    record.keyLabel = passThrough.passThrough(secret).label;
    QVERIFY(!record.toLogLine().contains(secret));
    QVERIFY(record.toLogLine().contains(QStringLiteral("key=") + KeyPool::mask(secret)));
}

void tst_RequestRecord::percentSignsInFields()
{
    // A "%" that is not followed by a digit must survive the formatting.
    RequestRecord record = fullRecord();
    record.model = QStringLiteral("100%-model");
    record.error = QStringLiteral("50% done %s");
    const QString line = record.toLogLine();
    QVERIFY2(line.contains(QLatin1String(" model=100%-model ")), qPrintable(line));
    QVERIFY2(line.contains(QLatin1String("error=\"50% done %s\"")), qPrintable(line));
    QVERIFY2(line.contains(QLatin1String(" status=200 latency=123ms ")), qPrintable(line));
}

void tst_RequestRecord::metaType()
{
    const RequestRecord record = fullRecord();
    const QVariant variant = QVariant::fromValue(record);
    QVERIFY(variant.canConvert<RequestRecord>());
    QCOMPARE(variant.value<RequestRecord>().toLogLine(), record.toLogLine());
}

// Regression: toLogLine() chains QString::arg(); a "%<digit>" in the path, model or
// key label (e.g. a URL-encoded "%2F") is taken for a placeholder by the following arg() calls.
void tst_RequestRecord::percentSignsInPathAreKept()
{
    RequestRecord record = fullRecord();
    record.path = QStringLiteral("/v1/files/a%2Fb?after=%3A");
    const QString line = record.toLogLine();
    QVERIFY2(line.contains(QLatin1String(" POST /v1/files/a%2Fb?after=%3A model=gpt-4o ")), qPrintable(line));
    QVERIFY2(line.contains(QLatin1String(" status=200 latency=123ms time=4567ms in=2048B out=8192B ")),
             qPrintable(line));

    record = fullRecord();
    record.model = QStringLiteral("%1");
    QVERIFY2(record.toLogLine().contains(QLatin1String(" model=%1 key=work status=200 ")),
             qPrintable(record.toLogLine()));
}

// Regression: the model comes from the client's JSON body; a newline in it (or in
// an error message) splits the "single line" and lets a client forge log lines.
void tst_RequestRecord::alwaysOneLine()
{
    RequestRecord record = fullRecord();
    record.model = QStringLiteral("gpt-4o\n2026-11-27T12:00:00.000Z GET /admin model=- key=- status=200");
    record.error = QStringLiteral("first line\r\nsecond line");
    const QString line = record.toLogLine();
    QVERIFY2(!line.contains(QLatin1Char('\n')) && !line.contains(QLatin1Char('\r')), qPrintable(line));
}

QTEST_GUILESS_MAIN(tst_RequestRecord)
#include "tst_requestrecord.moc"
