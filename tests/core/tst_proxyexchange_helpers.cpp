// Unit tests of ProxyExchange's static helpers: the upstream path and the usage counts of a response.
#include "openaierror.h"
#include "tokenusage.h"
#include "upstreampath.h"

#include <QtTest>

class tst_ProxyExchangeHelpers : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void upstreamPath_data();
    void upstreamPath();
    void dotSegments_data();
    void dotSegments();
    void parseUsage_data();
    void parseUsage();
    void parseUsageLeavesOutputsAloneWhenAbsent();
    void upstreamErrorMessage_data();
    void upstreamErrorMessage();
};

void tst_ProxyExchangeHelpers::upstreamPath_data()
{
    QTest::addColumn<QString>("base");
    QTest::addColumn<QString>("client");
    QTest::addColumn<QStringList>("strip");
    QTest::addColumn<QString>("expected");

    const QStringList none;
    const QStringList releaseTest { QStringLiteral("/release"), QStringLiteral("/test") };
    const QString chat = QStringLiteral("/v1/chat/completions");

    QTest::newRow("no base") << QString() << chat << none << chat;
    QTest::newRow("base /api") << QStringLiteral("/api") << chat << none
                               << QStringLiteral("/api/v1/chat/completions");
    QTest::newRow("base /api/") << QStringLiteral("/api/") << chat << none
                                << QStringLiteral("/api/v1/chat/completions");
    QTest::newRow("base /v1 not doubled") << QStringLiteral("/v1") << chat << none << chat;
    QTest::newRow("base /v1/ not doubled") << QStringLiteral("/v1/") << chat << none << chat;
    QTest::newRow("base /openai/v1/")
        << QStringLiteral("/openai/v1/") << chat << none << QStringLiteral("/openai/v1/chat/completions");
    QTest::newRow("base /v1, client without /v1")
        << QStringLiteral("/v1") << QStringLiteral("/chat/completions") << none << chat;
    QTest::newRow("base /v1, client /v1")
        << QStringLiteral("/v1") << QStringLiteral("/v1") << none << QStringLiteral("/v1");
    QTest::newRow("base /v1, client /v10/x")
        << QStringLiteral("/v1") << QStringLiteral("/v10/x") << none << QStringLiteral("/v1/v10/x");
    QTest::newRow("base /v2 kept") << QStringLiteral("/v2") << QStringLiteral("/v1/models") << none
                                   << QStringLiteral("/v2/v1/models");
    QTest::newRow("base /xv1 is not /v1")
        << QStringLiteral("/xv1") << QStringLiteral("/v1/models") << none << QStringLiteral("/xv1/v1/models");

    QTest::newRow("/v1/v1 collapsed")
        << QString() << QStringLiteral("/v1/v1/models") << none << QStringLiteral("/v1/models");
    QTest::newRow("/v1/v1/v1 collapsed")
        << QString() << QStringLiteral("/v1/v1/v1/models") << none << QStringLiteral("/v1/models");
    QTest::newRow("/v1/v1 alone") << QString() << QStringLiteral("/v1/v1") << none << QStringLiteral("/v1");
    QTest::newRow("/v1/v1 with base /v1")
        << QStringLiteral("/v1") << QStringLiteral("/v1/v1/models") << none << QStringLiteral("/v1/models");
    QTest::newRow("/v1/v1 with base /api") << QStringLiteral("/api") << QStringLiteral("/v1/v1/models")
                                           << none << QStringLiteral("/api/v1/models");
    QTest::newRow("/v1/v10 not collapsed")
        << QString() << QStringLiteral("/v1/v10/models") << none << QStringLiteral("/v1/v10/models");

    QTest::newRow("strip /release") << QString() << QStringLiteral("/release/v1/models") << releaseTest
                                    << QStringLiteral("/v1/models");
    QTest::newRow("strip /test") << QString() << QStringLiteral("/test/v1/chat/completions") << releaseTest
                                 << chat;
    QTest::newRow("strip then base /v1") << QStringLiteral("/v1") << QStringLiteral("/release/v1/models")
                                         << releaseTest << QStringLiteral("/v1/models");
    QTest::newRow("strip whole path")
        << QString() << QStringLiteral("/release") << releaseTest << QStringLiteral("/");
    QTest::newRow("strip only once") << QString() << QStringLiteral("/release/test/v1/models") << releaseTest
                                     << QStringLiteral("/test/v1/models");
    QTest::newRow("not stripped in the middle (Go proxy bug)")
        << QString() << QStringLiteral("/v1/test/x") << releaseTest << QStringLiteral("/v1/test/x");
    QTest::newRow("not stripped at the end") << QString() << QStringLiteral("/v1/models/release")
                                             << releaseTest << QStringLiteral("/v1/models/release");
    QTest::newRow("not stripped: longer segment") << QString() << QStringLiteral("/releases/v1/models")
                                                  << releaseTest << QStringLiteral("/releases/v1/models");
    QTest::newRow("not stripped: /testing")
        << QString() << QStringLiteral("/testing") << releaseTest << QStringLiteral("/testing");
    QTest::newRow("strip with base") << QStringLiteral("/api") << QStringLiteral("/release/v1/models")
                                     << releaseTest << QStringLiteral("/api/v1/models");
    QTest::newRow("root") << QString() << QStringLiteral("/") << releaseTest << QStringLiteral("/");
    QTest::newRow("azure deployment")
        << QStringLiteral("/openai") << QStringLiteral("/deployments/gpt4/chat/completions") << none
        << QStringLiteral("/openai/deployments/gpt4/chat/completions");
}

void tst_ProxyExchangeHelpers::upstreamPath()
{
    QFETCH(QString, base);
    QFETCH(QString, client);
    QFETCH(QStringList, strip);
    QFETCH(QString, expected);
    QCOMPARE(keyrelay::UpstreamPath::join(base, client, strip), expected);
}

void tst_ProxyExchangeHelpers::dotSegments_data()
{
    QTest::addColumn<QString>("path");
    QTest::addColumn<QString>("expected"); // empty: refused
    QTest::newRow("plain") << QStringLiteral("/v1/models") << QStringLiteral("/v1/models");
    QTest::newRow("dot") << QStringLiteral("/v1/./models") << QStringLiteral("/v1/models");
    QTest::newRow("dot dot inside") << QStringLiteral("/v1/x/../models") << QStringLiteral("/v1/models");
    QTest::newRow("encoded dot dot inside")
        << QStringLiteral("/v1/x/%2E%2e/models") << QStringLiteral("/v1/models");
    QTest::newRow("trailing dot dot") << QStringLiteral("/v1/x/..") << QStringLiteral("/v1/");
    QTest::newRow("percent-encoding kept")
        << QStringLiteral("/v1/models/org%2Fmodel") << QStringLiteral("/v1/models/org%2Fmodel");
    QTest::newRow("dots in a name") << QStringLiteral("/v1/files/a..b") << QStringLiteral("/v1/files/a..b");
    QTest::newRow("climbs") << QStringLiteral("/../../admin") << QString();
    QTest::newRow("climbs encoded") << QStringLiteral("/%2e%2e/%2e%2e/admin") << QString();
    QTest::newRow("climbs mixed") << QStringLiteral("/v1/../.%2E/admin") << QString();
    QTest::newRow("climbs through %2f") << QStringLiteral("/v1/..%2f..%2fadmin") << QString();
    QTest::newRow("climbs through backslash") << QStringLiteral("/v1/..\\..\\admin") << QString();
    QTest::newRow("climbs through %5c") << QStringLiteral("/v1/..%5C..%5Cadmin") << QString();
    QTest::newRow("not a path") << QStringLiteral("v1/models") << QString();
    QTest::newRow("malformed escape") << QStringLiteral("/v1/models/org%2Fmodel%zz") << QString();
    QTest::newRow("truncated escape") << QStringLiteral("/v1/models%2") << QString();
}

void tst_ProxyExchangeHelpers::dotSegments()
{
    QFETCH(QString, path);
    QFETCH(QString, expected);
    QString resolved;
    const bool ok = keyrelay::UpstreamPath::resolveDotSegments(path, &resolved);
    QCOMPARE(ok, !expected.isEmpty());
    if (ok)
        QCOMPARE(resolved, expected);
}

void tst_ProxyExchangeHelpers::parseUsage_data()
{
    QTest::addColumn<QByteArray>("data");
    QTest::addColumn<bool>("eventStream");
    QTest::addColumn<bool>("found");
    QTest::addColumn<qint64>("prompt");
    QTest::addColumn<qint64>("completion");
    QTest::addColumn<qint64>("total");

    QTest::newRow("chat JSON body") << QByteArrayLiteral(
        R"({"id":"x","object":"chat.completion","choices":[{"message":{"content":"hi"}}],)"
        R"("usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}})")
                                    << false << true << qint64(12) << qint64(5) << qint64(17);
    QTest::newRow("JSON body without total")
        << QByteArrayLiteral(R"({"usage":{"prompt_tokens":3,"completion_tokens":4}})") << false << true
        << qint64(3) << qint64(4) << qint64(7);
    QTest::newRow("embeddings: prompt and total only")
        << QByteArrayLiteral(R"({"object":"list","data":[],"usage":{"prompt_tokens":8,"total_tokens":8}})")
        << false << true << qint64(8) << qint64(-1) << qint64(8);
    QTest::newRow("Responses API JSON body (input/output tokens)")
        << QByteArrayLiteral(
               R"({"object":"response","usage":{"input_tokens":10,"output_tokens":20,"total_tokens":30}})")
        << false << true << qint64(10) << qint64(20) << qint64(30);
    QTest::newRow("pretty-printed JSON body")
        << QByteArrayLiteral("{\n  \"usage\": {\n    \"prompt_tokens\": 1,\n    \"completion_tokens\": 2,\n"
                             "    \"total_tokens\": 3\n  }\n}\n")
        << false << true << qint64(1) << qint64(2) << qint64(3);

    QTest::newRow("SSE tail: usage chunk then [DONE]") << QByteArrayLiteral(
        "data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"Hel\"}}],\"usage\":null}\n\n"
        "data: {\"id\":\"c\",\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],"
        "\"usage\":null}\n\n"
        "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,"
        "\"completion_tokens\":12,\"total_tokens\":21}}\n\n"
        "data: [DONE]\n\n") << true << true << qint64(9)
                                                       << qint64(12) << qint64(21);
    QTest::newRow("SSE tail with CRLF and no space after data:")
        << QByteArrayLiteral("data:{\"choices\":[]}\r\n\r\n"
                             "data:{\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3,"
                             "\"total_tokens\":5}}\r\n\r\n"
                             "data:[DONE]\r\n\r\n")
        << true << true << qint64(2) << qint64(3) << qint64(5);
    QTest::newRow("SSE tail cut in the middle of an earlier event") << QByteArrayLiteral(
        "ta\":{\"content\":\"x\"}}],\"usage\":nu\n\n"
        "data: {\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":6,\"total_tokens\":10}}\n\n"
        "data: [DONE]\n") << true << true << qint64(4) << qint64(6) << qint64(10);
    QTest::newRow("Responses API response.completed event")
        << QByteArrayLiteral("event: response.output_text.delta\n"
                             "data: {\"type\":\"response.output_text.delta\",\"delta\":\"usage\"}\n\n"
                             "event: response.completed\n"
                             "data: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"status\":"
                             "\"completed\",\"usage\":{\"input_tokens\":11,\"output_tokens\":22,"
                             "\"total_tokens\":33}}}\n\n")
        << true << true << qint64(11) << qint64(22) << qint64(33);
    QTest::newRow("the last usage wins") << QByteArrayLiteral(
        "data: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}\n\n"
        "data: {\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":5,\"total_tokens\":10}}\n\n"
        "data: [DONE]\n\n") << true << true
                                         << qint64(5) << qint64(5) << qint64(10);

    QTest::newRow("absent in JSON body") << QByteArrayLiteral(R"({"id":"x","choices":[]})") << false << false
                                         << qint64(-1) << qint64(-1) << qint64(-1);
    QTest::newRow("usage null in JSON body")
        << QByteArrayLiteral(R"({"usage":null})") << false << false << qint64(-1) << qint64(-1) << qint64(-1);
    QTest::newRow("usage empty object")
        << QByteArrayLiteral(R"({"usage":{}})") << false << false << qint64(-1) << qint64(-1) << qint64(-1);
    QTest::newRow("not JSON") << QByteArrayLiteral("<html>502 Bad Gateway</html>") << false << false
                              << qint64(-1) << qint64(-1) << qint64(-1);
    QTest::newRow("empty") << QByteArray() << false << false << qint64(-1) << qint64(-1) << qint64(-1);
    QTest::newRow("absent in event stream") << QByteArrayLiteral(
        "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"usage\":null}\n\ndata: [DONE]\n\n")
                                            << true << false << qint64(-1) << qint64(-1) << qint64(-1);
    QTest::newRow("the word usage in the content") << QByteArrayLiteral(
        R"({"choices":[{"message":{"content":"say \"usage\": {\"total_tokens\": 99}"}}],)"
        R"("usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})")
                                                   << false << true << qint64(3) << qint64(4) << qint64(7);
    QTest::newRow("usage null, real usage inside response") << QByteArrayLiteral(
        R"({"response":{"usage":{"input_tokens":5,"output_tokens":6,"total_tokens":11}},"usage":null})")
                                                            << false << true << qint64(5) << qint64(6)
                                                            << qint64(11);
    QTest::newRow("counts out of range are unknown")
        << QByteArrayLiteral(R"({"usage":{"prompt_tokens":1e300,"completion_tokens":-5,"total_tokens":4}})")
        << false << true << qint64(-1) << qint64(-1) << qint64(4);
    QTest::newRow("event stream read as JSON") << QByteArrayLiteral(
        "data: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}\n\n")
                                               << false << false << qint64(-1) << qint64(-1) << qint64(-1);
    QTest::newRow("usage only in a comment line")
        << QByteArrayLiteral(": usage {\"usage\":{\"prompt_tokens\":1}}\n\ndata: [DONE]\n\n") << true << false
        << qint64(-1) << qint64(-1) << qint64(-1);
}

void tst_ProxyExchangeHelpers::parseUsage()
{
    QFETCH(QByteArray, data);
    QFETCH(bool, eventStream);
    QFETCH(bool, found);
    QFETCH(qint64, prompt);
    QFETCH(qint64, completion);
    QFETCH(qint64, total);

    keyrelay::TokenUsage usage;
    QCOMPARE(keyrelay::parseTokenUsage(data, eventStream, &usage), found);
    QCOMPARE(usage.prompt, prompt);
    QCOMPARE(usage.completion, completion);
    QCOMPARE(usage.total, total);
}

void tst_ProxyExchangeHelpers::parseUsageLeavesOutputsAloneWhenAbsent()
{
    keyrelay::TokenUsage usage { 111, 222, 333 };
    QVERIFY(!keyrelay::parseTokenUsage(QByteArrayLiteral(R"({"choices":[]})"), false, &usage));
    QVERIFY(!keyrelay::parseTokenUsage(QByteArrayLiteral("data: [DONE]\n\n"), true, &usage));
    QVERIFY(!keyrelay::parseTokenUsage(QByteArrayLiteral("data: {\"usage\":null}\n\n"), true, &usage));
    QCOMPARE(usage.prompt, qint64(111));
    QCOMPARE(usage.completion, qint64(222));
    QCOMPARE(usage.total, qint64(333));
}

QTEST_GUILESS_MAIN(tst_ProxyExchangeHelpers)
void tst_ProxyExchangeHelpers::upstreamErrorMessage_data()
{
    QTest::addColumn<QByteArray>("body");
    QTest::addColumn<int>("status");
    QTest::addColumn<QString>("expected");

    QTest::newRow("openai error") << QByteArray(
        R"({"error":{"message":"Incorrect API key provided","type":"x"}})")
                                  << 401 << QStringLiteral("Incorrect API key provided");
    QTest::newRow("error as string") << QByteArray(R"({"error":"model not found"})") << 404
                                     << QStringLiteral("model not found");
    QTest::newRow("error typed as a stream") << QByteArray(
        "event: error\ndata: {\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\"}}\n\n")
                                             << 429 << QStringLiteral("Rate limit reached");
    QTest::newRow("stream without an error")
        << QByteArray("data: {\"choices\":[]}\n\ndata: [DONE]\n\n") << 500
        << QStringLiteral("upstream answered 500 Internal Server Error");
    QTest::newRow("not json") << QByteArray("<html>bad gateway</html>") << 502
                              << QStringLiteral("upstream answered 502 Bad Gateway");
    QTest::newRow("empty") << QByteArray() << 429
                           << QStringLiteral("upstream answered 429 Too Many Requests");
}

void tst_ProxyExchangeHelpers::upstreamErrorMessage()
{
    QFETCH(QByteArray, body);
    QFETCH(int, status);
    QFETCH(QString, expected);
    QCOMPARE(keyrelay::upstreamErrorMessage(body, status), expected);
}

#include "tst_proxyexchange_helpers.moc"
