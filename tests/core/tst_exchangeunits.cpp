// Unit tests of the small units ProxyExchange is made of: which headers cross the proxy, where a
// request goes upstream, the stream_options KeyRelay adds, and the usage chunk it takes out again.
#include "curlengine.h"
#include "headerpolicy.h"
#include "responsehead.h"
#include "messagerewriter.h"
#include "tokenusage.h"
#include "upstreamfailure.h"
#include "upstreampath.h"

#include <QJsonDocument>
#include <QJsonObject>
#include <QtTest>

#include <cerrno>

using namespace keyrelay;

class tst_ExchangeUnits : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void upstreamHeadersDropCredentialsAndHopByHop();
    void upstreamHeadersJoinRepeatsAndDefaultUserAgent();
    void clientHeadersDropFramingAndUpstreamCors();
    void clientCredentialSkipsTheClientToken();
    void mapTarget_data();
    void mapTarget();
    void modelsUrl();
    void requestStreamUsage_data();
    void requestStreamUsage();
    void rewriteReordersAndRequestsUsageTogether();
    void usageOnlyEvent_data();
    void usageOnlyEvent();
    void filterRemovesOnlyTheUsageChunk();
    void filterSplitAnywhereGivesTheSameStream();
    void filterPassesWholeEventsAtOnce();
    void networkFailureSaysWhere_data();
    void networkFailureSaysWhere();
    void timeoutsNameTheProxy();
    void curlFailureSaysWhere_data();
    void curlFailureSaysWhere();
    void responseHeadSkipsInterimAndDropsInjection();
};

void tst_ExchangeUnits::upstreamHeadersDropCredentialsAndHopByHop()
{
    const HeaderList client { { "Authorization", "Bearer sk-client" },
                              { "x-api-key", "sk-x" },
                              { "api-key", "sk-y" },
                              { "Connection", "keep-alive, X-Secret-Hop" },
                              { "X-Secret-Hop", "1" },
                              { "Host", "127.0.0.1:9000" },
                              { "Content-Length", "12" },
                              { "Accept-Encoding", "gzip" },
                              { "Expect", "100-continue" },
                              { "Transfer-Encoding", "chunked" },
                              { "Proxy-Authorization", "Basic eA==" },
                              { "OpenAI-Organization", "org-1" },
                              { "User-Agent", "OpenAI/Python 1.0" } };
    const HeaderList upstream = HeaderPolicy::forUpstream(client, "KeyRelay/test");
    const HeaderList expected { { "OpenAI-Organization", "org-1" }, { "User-Agent", "OpenAI/Python 1.0" } };
    QCOMPARE(upstream, expected);
}

void tst_ExchangeUnits::upstreamHeadersJoinRepeatsAndDefaultUserAgent()
{
    const HeaderList client { { "Accept", "text/event-stream" },
                              { "accept", "application/json" },
                              { "User-Agent", "" } };
    const HeaderList upstream = HeaderPolicy::forUpstream(client, "KeyRelay/test");
    const HeaderList expected { { "Accept", "text/event-stream, application/json" },
                                { "User-Agent", "KeyRelay/test" } };
    QCOMPARE(upstream, expected);
}

void tst_ExchangeUnits::clientHeadersDropFramingAndUpstreamCors()
{
    const HeaderList upstream {
        { "Content-Type", "application/json" }, { "Content-Length", "10" },
        { "Content-Encoding", "gzip" },         { "Access-Control-Allow-Origin", "*" },
        { "Connection", "close, X-Hop" },       { "X-Hop", "1" },
        { "Set-Cookie", "a=1\nb=2" },           { "x-request-id", "req_1" }
    };
    const HeaderList cors { { "Access-Control-Allow-Origin", "http://localhost:3000" } };
    const HeaderList client = HeaderPolicy::forClient(upstream, cors);
    const HeaderList expected { { "Content-Type", "application/json" },
                                { "Content-Encoding", "gzip" }, // the body passes encoded
                                { "Set-Cookie", "a=1" },
                                { "Set-Cookie", "b=2" },
                                { "x-request-id", "req_1" },
                                { "Access-Control-Allow-Origin", "http://localhost:3000" } };
    QCOMPARE(client, expected);
}

void tst_ExchangeUnits::clientCredentialSkipsTheClientToken()
{
    const auto isToken = [](const QByteArray &value) {
        return value == "krt-token";
    };
    bool viaApiKey = true;
    HttpRequest request;
    request.headers = { { "Authorization", "Bearer sk-own" } };
    QCOMPARE(HeaderPolicy::clientCredential(request, isToken, &viaApiKey), QByteArray("sk-own"));
    QVERIFY(!viaApiKey);

    request.headers = { { "Authorization", "Bearer krt-token" }, { "api-key", "sk-azure" } };
    QCOMPARE(HeaderPolicy::clientCredential(request, isToken, &viaApiKey), QByteArray("sk-azure"));
    QVERIFY(viaApiKey);

    request.headers = { { "x-api-key", "krt-token" } };
    QVERIFY(HeaderPolicy::clientCredential(request, isToken, &viaApiKey).isEmpty());
}

void tst_ExchangeUnits::mapTarget_data()
{
    QTest::addColumn<QString>("base");
    QTest::addColumn<QByteArray>("target");
    QTest::addColumn<bool>("ok");
    QTest::addColumn<QString>("expected"); // the URL, or the error code

    QTest::newRow("plain") << "https://api.openai.com" << QByteArray("/v1/chat/completions") << true
                           << "https://api.openai.com/v1/chat/completions";
    QTest::newRow("query kept") << "http://127.0.0.1:8080/api" << QByteArray("/v1/models?limit=2&after=a%20b")
                                << true << "http://127.0.0.1:8080/api/v1/models?limit=2&after=a%20b";
    QTest::newRow("base query dropped")
        << "http://h/x?secret=1" << QByteArray("/v1/models") << true << "http://h/x/v1/models";
    QTest::newRow("%2F kept") << "http://h" << QByteArray("/v1/models/org%2Fmodel") << true
                              << "http://h/v1/models/org%2Fmodel";
    QTest::newRow("dots resolved") << "http://h" << QByteArray("/v1/a/../models") << true
                                   << "http://h/v1/models";
    QTest::newRow("climbs") << "http://h/api" << QByteArray("/../../admin") << false << "bad_path";
    QTest::newRow("bad escape") << "http://h" << QByteArray("/v1/%zz") << false << "bad_path";
    QTest::newRow("absolute form") << "http://h" << QByteArray("http://evil/v1") << false << "bad_request";
}

void tst_ExchangeUnits::mapTarget()
{
    QFETCH(QString, base);
    QFETCH(QByteArray, target);
    QFETCH(bool, ok);
    QFETCH(QString, expected);
    QUrl url;
    QString error;
    QString code;
    QCOMPARE(UpstreamPath::mapTarget(QUrl(base), target, {}, &url, &error, &code), ok);
    if (ok) {
        QCOMPARE(url.toString(QUrl::FullyEncoded), expected);
    } else {
        QCOMPARE(code, expected);
        QVERIFY(!error.isEmpty());
    }
}

void tst_ExchangeUnits::modelsUrl()
{
    QCOMPARE(UpstreamPath::modelsUrl(QUrl(QStringLiteral("https://api.openai.com"))).toString(),
             QStringLiteral("https://api.openai.com/v1/models"));
    QCOMPARE(UpstreamPath::modelsUrl(QUrl(QStringLiteral("https://example.org/openai/v1?x=1"))).toString(),
             QStringLiteral("https://example.org/openai/v1/models"));
}

void tst_ExchangeUnits::requestStreamUsage_data()
{
    QTest::addColumn<QByteArray>("body");
    QTest::addColumn<QByteArray>("expected"); // empty: left alone

    QTest::newRow("added")
        << QByteArray(R"({"model":"m","stream":true,"messages":[]} )")
        << QByteArray(
               R"({"model":"m","stream":true,"messages":[],"stream_options":{"include_usage":true}} )");
    QTest::newRow("not streamed") << QByteArray(R"({"model":"m","messages":[]})") << QByteArray();
    QTest::newRow("stream false") << QByteArray(R"({"stream":false})") << QByteArray();
    QTest::newRow("stream \"true\" string") << QByteArray(R"({"stream":"true"})") << QByteArray();
    QTest::newRow("client asked") << QByteArray(R"({"stream":true,"stream_options":{"include_usage":true}})")
                                  << QByteArray();
    QTest::newRow("include_usage false")
        << QByteArray(R"({"stream":true,"stream_options":{"include_usage":false}})")
        << QByteArray(R"({"stream":true,"stream_options":{"include_usage":true}})");
    QTest::newRow("other options")
        << QByteArray(R"({"stream":true,"stream_options":{ "x":1}})")
        << QByteArray(R"({"stream":true,"stream_options":{"include_usage":true, "x":1}})");
    QTest::newRow("empty options") << QByteArray(R"({"stream":true,"stream_options":{ }})")
                                   << QByteArray(
                                          R"({"stream":true,"stream_options":{"include_usage":true }})");
    QTest::newRow("null options") << QByteArray(R"({"stream":true,"stream_options":null})")
                                  << QByteArray(R"({"stream":true,"stream_options":{"include_usage":true}})");
    QTest::newRow("numbers kept") << QByteArray("{\"stream\":true,\"temperature\":0.10,\"n\":1E0}\n")
                                  << QByteArray("{\"stream\":true,\"temperature\":0.10,\"n\":1E0,"
                                                "\"stream_options\":{\"include_usage\":true}}\n");
    QTest::newRow("not an object") << QByteArray("[1]") << QByteArray();
    QTest::newRow("invalid") << QByteArray(R"({"stream":true,)") << QByteArray();
}

void tst_ExchangeUnits::requestStreamUsage()
{
    QFETCH(QByteArray, body);
    QFETCH(QByteArray, expected);
    QByteArray changed = body;
    QCOMPARE(MessageRewriter::requestStreamUsage(&changed), !expected.isEmpty());
    QCOMPARE(changed, expected.isEmpty() ? body : expected);
    if (!expected.isEmpty()) {
        const QJsonDocument document = QJsonDocument::fromJson(changed);
        QVERIFY(document.isObject());
        QCOMPARE(document.object()
                     .value(QLatin1String("stream_options"))
                     .toObject()
                     .value(QLatin1String("include_usage")),
                 QJsonValue(true));
    }
}

void tst_ExchangeUnits::rewriteReordersAndRequestsUsageTogether()
{
    const QByteArray body = R"({"model":"gpt","stream":true,"messages":[{"role":"system","content":"S"},)"
                            R"({"role":"user","content":"1"},{"role":"user","content":"2"},)"
                            R"({"role":"user","content":"3"},{"role":"user","content":"4"}]})";
    RewriteOptions options;
    options.requestStreamUsage = true;
    MessageRewriter::Result result = MessageRewriter::rewrite(body, options);
    QCOMPARE(result.outcome, MessageRewriter::Outcome::Rewritten);
    QVERIFY(result.reordered);
    QVERIFY(result.usageRequested);
    QCOMPARE(result.body,
             QByteArray(R"({"model":"gpt","stream":true,"messages":[{"role":"user","content":"1"},)"
                        R"({"role":"system","content":"S"},{"role":"user","content":"2"},)"
                        R"({"role":"user","content":"3"},{"role":"user","content":"4"}],)"
                        R"("stream_options":{"include_usage":true}})"));

    options.enabled = false; // reordering off: usage still requested
    result = MessageRewriter::rewrite(body, options);
    QVERIFY(!result.reordered);
    QVERIFY(result.usageRequested);
    QVERIFY(result.body.startsWith(body.chopped(1)));

    options.requestStreamUsage = false;
    result = MessageRewriter::rewrite(body, options);
    QCOMPARE(result.outcome, MessageRewriter::Outcome::NotApplicable);
    QVERIFY(result.body.isEmpty());
}

void tst_ExchangeUnits::usageOnlyEvent_data()
{
    QTest::addColumn<QByteArray>("event");
    QTest::addColumn<bool>("usageOnly");

    QTest::newRow("usage chunk") << QByteArray(
        "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,"
        "\"completion_tokens\":5,\"total_tokens\":8}}\n\n")
                                 << true;
    QTest::newRow("spaced, CRLF") << QByteArray(
        "data: {\"choices\" : [ ], \"usage\": {\"total_tokens\": 8}}\r\n\r\n")
                                  << true;
    QTest::newRow("content chunk with usage null")
        << QByteArray("data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n") << false;
    QTest::newRow("empty choices, usage null")
        << QByteArray("data: {\"choices\":[],\"usage\":null}\n\n") << false;
    QTest::newRow("done") << QByteArray("data: [DONE]\n\n") << false;
    QTest::newRow("text mentions it") << QByteArray("data: {\"choices\":[{\"delta\":{\"content\":"
                                                    "\"\\\"choices\\\":[] usage\"}}]}\n\n")
                                      << false;
}

void tst_ExchangeUnits::usageOnlyEvent()
{
    QFETCH(QByteArray, event);
    QFETCH(bool, usageOnly);
    QCOMPARE(StreamUsageFilter::isUsageOnlyEvent(event), usageOnly);
}

namespace {
const QByteArray chunk1
    = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}],\"usage\":null}\n\n";
const QByteArray chunk2
    = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}],\"usage\":null}\n\n";
const QByteArray usageChunk = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,"
                              "\"total_tokens\":9}}\n\n";
const QByteArray done = "data: [DONE]\n\n";
} // namespace

void tst_ExchangeUnits::filterRemovesOnlyTheUsageChunk()
{
    StreamUsageFilter filter;
    const QByteArray out = filter.feed(chunk1 + chunk2 + usageChunk + done) + filter.finish();
    QCOMPARE(out, chunk1 + chunk2 + done);
    QCOMPARE(filter.removedEvents(), 1);
}

void tst_ExchangeUnits::filterSplitAnywhereGivesTheSameStream()
{
    const QByteArray stream = ": comment\n\n" + chunk1 + chunk2 + usageChunk + done + "data: trailing";
    const QByteArray expected = ": comment\n\n" + chunk1 + chunk2 + done + "data: trailing";
    for (qsizetype cut1 = 0; cut1 <= stream.size(); cut1 += 7) {
        for (qsizetype cut2 = cut1; cut2 <= stream.size(); cut2 += 13) {
            StreamUsageFilter filter;
            QByteArray out = filter.feed(stream.left(cut1));
            out += filter.feed(stream.mid(cut1, cut2 - cut1));
            out += filter.feed(stream.mid(cut2));
            out += filter.finish();
            if (out != expected)
                QFAIL(qPrintable(QStringLiteral("cut at %1 and %2").arg(cut1).arg(cut2)));
            QCOMPARE(filter.removedEvents(), 1);
        }
    }
}

void tst_ExchangeUnits::filterPassesWholeEventsAtOnce()
{
    StreamUsageFilter filter;
    QCOMPARE(filter.feed(chunk1), chunk1); // nothing held back once an event is complete
    QCOMPARE(filter.feed(chunk2.left(10)), QByteArray());
    QCOMPARE(filter.feed(chunk2.mid(10)), chunk2);
    QCOMPARE(filter.finish(), QByteArray());
}

void tst_ExchangeUnits::networkFailureSaysWhere_data()
{
    // Through a proxy, whether a failure is the proxy's or the upstream's depends on the scheme: a plain
    // http request is one exchange with the proxy, an https one goes through a tunnel (CONNECT).
    QTest::addColumn<int>("curlCode");
    QTest::addColumn<QString>("upstream");
    QTest::addColumn<QString>("proxy"); // the [proxy] upstreamProxy setting
    QTest::addColumn<QString>("code");
    QTest::addColumn<QString>("message");

    const QString http = QStringLiteral("http://127.0.0.1:8080");
    const QString https = QStringLiteral("https://api.example.com");
    const QString httpProxy = QStringLiteral("http://127.0.0.1:8888");
    QTest::newRow("upstream refused") << 7 << http << QString() << "upstream_unreachable"
                                      << "the upstream 127.0.0.1:8080 refused the connection";
    QTest::newRow("proxy refused (plain http)")
        << 7 << http << httpProxy << "upstream_proxy_error"
        << "the HTTP proxy 127.0.0.1:8888 refused the connection (is it running?)";
    QTest::newRow("proxy refused (CONNECT)")
        << 7 << https << httpProxy << "upstream_proxy_error"
        << "the HTTP proxy 127.0.0.1:8888 refused the connection (is it running?)";
    QTest::newRow("socks5 refused") << 7 << http << "socks5://[::1]:1080"
                                    << "upstream_proxy_error"
                                    << "the SOCKS5 proxy [::1]:1080 refused the connection (is it running?)";
    QTest::newRow("proxy closed (plain http)")
        << 52 << http << httpProxy << "upstream_proxy_error"
        << "the HTTP proxy 127.0.0.1:8888 closed the connection before the upstream 127.0.0.1:8080 answered";
    QTest::newRow("upstream closed through a tunnel")
        << 56 << https << httpProxy << "upstream_unreachable"
        << "the upstream api.example.com:443 closed the connection before answering";
    QTest::newRow("proxy closed before answering CONNECT")
        << 56 << https << httpProxy << "upstream_proxy_error"
        << "the HTTP proxy 127.0.0.1:8888 closed the connection before the upstream api.example.com:443 "
           "answered";
    QTest::newRow("tls, no details") << 35 << https << QString() << "upstream_tls_error"
                                     << "TLS with the upstream api.example.com:443 failed: curl's own text";
}

void tst_ExchangeUnits::networkFailureSaysWhere()
{
    QFETCH(int, curlCode);
    QFETCH(QString, upstream);
    QFETCH(QString, proxy);
    QFETCH(QString, code);
    QFETCH(QString, message);
    UpstreamResult result;
    result.curlCode = curlCode;
    result.osErrno = curlCode == 7 ? ECONNREFUSED : 0;
    // The tunnel opened (CONNECT answered 200) only in the row about the upstream behind it.
    if (QByteArray(QTest::currentDataTag()).contains("through a tunnel"))
        result.proxyConnectCode = 200;
    result.message = QStringLiteral("curl's own text");
    ProxyConfig config;
    config.upstreamProxy = proxy;
    const QUrl url(upstream);
    const NetworkFailure failure = describeUpstreamResult(result, url, effectiveProxy(config, url), 15);
    QCOMPARE(failure.code, code);
    QCOMPARE(failure.message, message);
}

void tst_ExchangeUnits::timeoutsNameTheProxy()
{
    const QUrl upstream(QStringLiteral("https://api.example.com"));
    const QNetworkProxy none(QNetworkProxy::NoProxy);
    const QNetworkProxy proxy(QNetworkProxy::HttpProxy, QStringLiteral("10.0.0.1"), 3128);
    QCOMPARE(describeTimeout(true, 15, upstream, none).code, QStringLiteral("upstream_connect_timeout"));
    QCOMPARE(describeTimeout(true, 15, upstream, none).message,
             QStringLiteral("could not connect to the upstream https://api.example.com within 15 s"));
    QCOMPARE(describeTimeout(true, 15, upstream, proxy).code, QStringLiteral("upstream_proxy_timeout"));
    QVERIFY(describeTimeout(true, 15, upstream, proxy)
                .message.startsWith(
                    QLatin1String("the HTTP proxy 10.0.0.1:3128 did not get the request through")));
    QCOMPARE(describeTimeout(false, 300, upstream, proxy).message,
             QStringLiteral("nothing came from the upstream through the HTTP proxy 10.0.0.1:3128 for 300 s"));
    QCOMPARE(describeTimeout(false, 300, upstream, none).code, QStringLiteral("upstream_idle_timeout"));
}

QTEST_GUILESS_MAIN(tst_ExchangeUnits)
void tst_ExchangeUnits::curlFailureSaysWhere_data()
{
    // libcurl's end of a transfer (CURLcode, OS error, certificate verify result, proxy CONNECT answer)
    // said so that the user knows what to fix, for proxied requests, the Keys page's Test and the re-check.
    QTest::addColumn<int>("curlCode");
    QTest::addColumn<int>("osErrno");
    QTest::addColumn<int>("verify");
    QTest::addColumn<int>("connectCode");
    QTest::addColumn<QString>("proxy");
    QTest::addColumn<QString>("code");
    QTest::addColumn<QString>("message");
    const QString none;
    QTest::newRow("refused") << 7 << ECONNREFUSED << 0 << 0 << none << "upstream_unreachable"
                             << "the upstream api.example.com:443 refused the connection";
    QTest::newRow("proxy refused") << 7 << ECONNREFUSED << 0 << 0 << "http://127.0.0.1:3128"
                                   << "upstream_proxy_error"
                                   << "the HTTP proxy 127.0.0.1:3128 refused the connection (is it running?)";
    QTest::newRow("not found")
        << 6 << 0 << 0 << 0 << none << "upstream_unreachable"
        << "the upstream api.example.com:443 was not found (its host name does not resolve)";
    QTest::newRow("proxy not found")
        << 5 << 0 << 0 << 0 << "socks5://proxy.invalid:1080"
        << "upstream_proxy_error"
        << "the SOCKS5 proxy proxy.invalid:1080 was not found (its host name does not "
           "resolve)";
    QTest::newRow("407, no credentials")
        << 56 << 0 << 0 << 407 << "http://127.0.0.1:3128"
        << "upstream_proxy_error"
        << "the HTTP proxy 127.0.0.1:3128 asks for credentials and none are set "
           "(give them in the upstream proxy setting: http://user:password@host:port)";
    QTest::newRow("407, wrong credentials")
        << 56 << 0 << 0 << 407 << "http://bob:secret-pw@127.0.0.1:3128"
        << "upstream_proxy_error"
        << "the HTTP proxy 127.0.0.1:3128 refused the credentials (user \"bob\")";
    QTest::newRow("connect timeout")
        << 28 << 0 << 0 << 0 << none << "upstream_connect_timeout"
        << "could not connect to the upstream https://api.example.com within 15 s";
    QTest::newRow("expired")
        << 60 << 0 << 10 << 0 << none << "upstream_tls_error"
        << "TLS with the upstream api.example.com:443 failed: its certificate has expired";
    QTest::newRow("wrong host")
        << 60 << 0 << 62 << 0 << none << "upstream_tls_error"
        << "TLS with the upstream api.example.com:443 failed: its certificate is not for "
           "api.example.com";
    QTest::newRow("self-signed")
        << 60 << 0 << 18 << 0 << none << "upstream_tls_error"
        << "TLS with the upstream api.example.com:443 failed: its certificate is not trusted "
           "(self-signed or from an authority this machine does not trust)";
    QTest::newRow("closed before answering")
        << 52 << 0 << 0 << 0 << none << "upstream_unreachable"
        << "the upstream api.example.com:443 closed the connection before answering";
}

void tst_ExchangeUnits::curlFailureSaysWhere()
{
    QFETCH(int, curlCode);
    QFETCH(int, osErrno);
    QFETCH(int, verify);
    QFETCH(int, connectCode);
    QFETCH(QString, proxy);
    QFETCH(QString, code);
    QFETCH(QString, message);
    UpstreamResult result;
    result.curlCode = curlCode;
    result.osErrno = osErrno;
    result.sslVerifyResult = verify;
    result.proxyConnectCode = connectCode;
    result.message = QStringLiteral("curl's own text");
    ProxyConfig config;
    config.upstreamProxy = proxy;
    const QUrl url(QStringLiteral("https://api.example.com"));
    const NetworkFailure failure = describeUpstreamResult(result, url, effectiveProxy(config, url), 15);
    QCOMPARE(failure.code, code);
    QCOMPARE(failure.message, message);
    QVERIFY(!failure.message.contains(QLatin1String("secret"))); // a proxy password is never shown
}

void tst_ExchangeUnits::responseHeadSkipsInterimAndDropsInjection()
{
    ResponseHeadReader reader(1024);
    const auto feed = [&reader](const QByteArray &line) { return reader.feedLine(line.constData(), size_t(line.size())); };
    using Progress = ResponseHeadReader::Progress;
    QCOMPARE(feed("HTTP/1.1 103 Early Hints\r\n"), Progress::Reading);
    QCOMPARE(feed("Link: </a.css>; rel=preload\r\n"), Progress::Reading);
    QCOMPARE(feed("\r\n"), Progress::Reading); // an interim answer never completes the head
    QVERIFY(!reader.isComplete());
    QCOMPARE(feed("HTTP/2 200\r\n"), Progress::Reading);
    QCOMPARE(feed("content-type: text/event-stream\r\n"), Progress::Reading);
    QCOMPARE(feed("X-Folded: a\r\n"), Progress::Reading);
    QCOMPARE(feed("   b\r\n"), Progress::Reading);
    QCOMPARE(feed("X-Split: one\rSet-Cookie: injected\r\n"), Progress::Reading); // a bare CR: dropped
    QCOMPARE(feed("Bad Name: x\r\n"), Progress::Reading); // not a token: dropped
    QCOMPARE(feed("\r\n"), Progress::Complete);
    QCOMPARE(reader.status(), 200);
    QCOMPARE(reader.version(), QByteArray("2"));
    const HeaderList expected { { "content-type", "text/event-stream" }, { "X-Folded", "a b" } };
    QCOMPARE(reader.headers(), expected);
    QCOMPARE(feed("X-Trailer: t\r\n"), Progress::Reading); // a trailer after the body: not the head's
    QCOMPARE(reader.headers(), expected);

    ResponseHeadReader small(40);
    QCOMPARE(small.feedLine("HTTP/1.1 200 OK\r\n", 17), Progress::Reading);
    const QByteArray big = "X-Big: " + QByteArray(30, 'x') + "\r\n";
    QCOMPARE(small.feedLine(big.constData(), size_t(big.size())), Progress::TooLarge);
    QCOMPARE(small.feedLine("\r\n", 2), Progress::TooLarge);
    QVERIFY(!small.isComplete());
}

#include "tst_exchangeunits.moc"
