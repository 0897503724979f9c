// The local HTTP/1.1 front end: the request parser (data tables for every framing rule) and the
// connection state machine over real loopback sockets (pipelining, errors, timeouts).
#include "httpconnection.h"
#include "httprequestparser.h"

#include <QElapsedTimer>
#include <QSignalSpy>
#include <QTcpServer>
#include <QTcpSocket>
#include <QtTest>

using namespace keyrelay;

namespace {
struct Parsed
{
    QList<HttpRequest> requests;
    int errorStatus = 0;
    QByteArray errorMessage;
    bool needMore = false;
    QByteArray rest;
};

/// Feeds @p input in pieces of @p step bytes (0 = all at once) and collects what the parser says.
Parsed feed(const QByteArray &input, int step = 0, const HttpLimits &limits = HttpLimits())
{
    HttpRequestParser parser(limits);
    Parsed out;
    QByteArray buffer;
    qsizetype offset = 0;
    while (true) {
        if (offset < input.size()) {
            const qsizetype take = step > 0 ? qMin<qsizetype>(step, input.size() - offset) : input.size();
            buffer += input.mid(offset, take);
            offset += take;
        }
        bool progressed = true;
        while (progressed) {
            progressed = false;
            switch (parser.parse(buffer)) {
            case HttpRequestParser::Event::HeadParsed:
                progressed = true;
                break;
            case HttpRequestParser::Event::Complete:
                out.requests.append(parser.takeRequest());
                parser.reset();
                progressed = !buffer.isEmpty();
                break;
            case HttpRequestParser::Event::Error:
                out.errorStatus = parser.errorStatus();
                out.errorMessage = parser.errorMessage();
                return out;
            case HttpRequestParser::Event::NeedMore:
                break;
            }
        }
        if (offset >= input.size()) {
            out.needMore = !parser.isIdle();
            out.rest = buffer;
            return out;
        }
    }
}

QByteArray post(const QByteArray &extraHeaders, const QByteArray &body)
{
    return "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extraHeaders + "\r\n" + body;
}
} // namespace

class tst_HttpConnection : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void parser_data();
    void parser();
    void splitFeedingGivesTheSameResult_data();
    void splitFeedingGivesTheSameResult();
    void pipelinedRequests();
    void trailersDropped();
    void headerCountLimit();
    void headOfExactlyTheLimit();
    void largePathWithinLimit();
    void bodyLimitBeforeTheBody();

    void connectionPipeliningAfterErrorStops();
    void connectionHeadDeadlineIsNotExtendedByBytes();
    void connectionSlowBodyRefused();
    void connectionIdleKeepAliveCloses();
    void connectionServesWhileAnotherIsSlow();

private:
    struct Pair
    {
        std::unique_ptr<QTcpServer> server;
        QPointer<HttpConnection> connection;
        std::unique_ptr<QTcpSocket> client;
        QList<HttpRequest> received;
    };
    /// A client connected to a new server, or to @p sharedServer's (then @p pair does not own it).
    bool connectPair(Pair *pair, const HttpLimits &limits, QTcpServer *sharedServer = nullptr);
};

void tst_HttpConnection::parser_data()
{
    QTest::addColumn<QByteArray>("input");
    QTest::addColumn<int>("status"); // 0 = one complete request
    QTest::addColumn<QByteArray>("body");

    QTest::newRow("GET") << QByteArray("GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n") << 0 << QByteArray();
    QTest::newRow("bare LF lines") << QByteArray("GET / HTTP/1.1\nHost: x\n\n") << 0 << QByteArray();
    QTest::newRow("leading empty lines")
        << QByteArray("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n") << 0 << QByteArray();
    QTest::newRow("HTTP/1.0") << QByteArray("GET / HTTP/1.0\r\n\r\n") << 0 << QByteArray();
    QTest::newRow("Content-Length") << post("Content-Length: 5\r\n", "hello") << 0 << QByteArray("hello");
    QTest::newRow("Content-Length 0") << post("Content-Length: 0\r\n", "") << 0 << QByteArray();
    QTest::newRow("chunked") << post("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n") << 0
                             << QByteArray("hello");
    QTest::newRow("chunked upper hex")
        << post("Transfer-Encoding: chunked\r\n", "A\r\n0123456789\r\n0\r\n\r\n") << 0
        << QByteArray("0123456789");
    QTest::newRow("chunked, extension")
        << post("Transfer-Encoding: chunked\r\n", "5;name=value\r\nhello\r\n0\r\n\r\n") << 0
        << QByteArray("hello");
    QTest::newRow("chunked, BWS before extension")
        << post("Transfer-Encoding: chunked\r\n", "5 ;x\r\nhello\r\n0\r\n\r\n") << 0 << QByteArray("hello");
    QTest::newRow("chunked, case and spaces in TE")
        << post("Transfer-Encoding:  Chunked \r\n", "1\r\na\r\n0\r\n\r\n") << 0 << QByteArray("a");
    QTest::newRow("absolute-form target (refused later, by the proxy)")
        << QByteArray("GET http://evil.example/x HTTP/1.1\r\nHost: x\r\n\r\n") << 0 << QByteArray();
    QTest::newRow("lower-case method parses (refused by the proxy)")
        << QByteArray("trace / HTTP/1.1\r\nHost: x\r\n\r\n") << 0 << QByteArray();

    // Framing (RFC 9112 6): never two ways to read one request.
    QTest::newRow("two differing Content-Length")
        << post("Content-Length: 5\r\nContent-Length: 34\r\n", "hello") << 400 << QByteArray();
    QTest::newRow("two equal Content-Length")
        << post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello") << 400 << QByteArray();
    QTest::newRow("Content-Length list") << post("Content-Length: 5, 5\r\n", "hello") << 400 << QByteArray();
    QTest::newRow("Content-Length +34") << post("Content-Length: +34\r\n", "hello") << 400 << QByteArray();
    QTest::newRow("Content-Length -0") << post("Content-Length: -0\r\n", "") << 400 << QByteArray();
    QTest::newRow("Content-Length hex") << post("Content-Length: 0x5\r\n", "hello") << 400 << QByteArray();
    QTest::newRow("Content-Length empty") << post("Content-Length:\r\n", "") << 400 << QByteArray();
    QTest::newRow("Content-Length huge digits")
        << post("Content-Length: 99999999999999999999\r\n", "") << 400 << QByteArray();
    QTest::newRow("CL with TE") << post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n")
                                << 400 << QByteArray();
    QTest::newRow("TE with CL") << post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n")
                                << 400 << QByteArray();
    QTest::newRow("second TE header, chunked twice")
        << post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n") << 400
        << QByteArray();
    QTest::newRow("second TE header makes chunked not final")
        << post("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", "0\r\n\r\n") << 400
        << QByteArray();
    QTest::newRow("TE gzip only") << post("Transfer-Encoding: gzip\r\n", "") << 400 << QByteArray();
    QTest::newRow("TE gzip, chunked")
        << post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n") << 501 << QByteArray();
    QTest::newRow("TE in HTTP/1.0") << QByteArray(
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
                                    << 400 << QByteArray();
    QTest::newRow("chunk size 0x40") << post("Transfer-Encoding: chunked\r\n", "0x40\r\n") << 400
                                     << QByteArray();
    QTest::newRow("chunk size ' 40'")
        << post("Transfer-Encoding: chunked\r\n", " 40\r\n") << 400 << QByteArray();
    QTest::newRow("chunk size '+40'")
        << post("Transfer-Encoding: chunked\r\n", "+40\r\n") << 400 << QByteArray();
    QTest::newRow("chunk size '-1'") << post("Transfer-Encoding: chunked\r\n", "-1\r\n") << 400
                                     << QByteArray();
    QTest::newRow("chunk size trailing space")
        << post("Transfer-Encoding: chunked\r\n", "5 \r\nhello\r\n") << 400 << QByteArray();
    QTest::newRow("chunk size empty")
        << post("Transfer-Encoding: chunked\r\n", "\r\n") << 400 << QByteArray();
    QTest::newRow("chunk size overflow")
        << post("Transfer-Encoding: chunked\r\n", "fffffffffffffffff\r\n") << 400 << QByteArray();
    QTest::newRow("missing CRLF after chunk data")
        << post("Transfer-Encoding: chunked\r\n", "5\r\nhelloXX0\r\n\r\n") << 400 << QByteArray();
    QTest::newRow("bare CR in chunk line")
        << post("Transfer-Encoding: chunked\r\n", "5\rx\r\nhello\r\n") << 400 << QByteArray();

    // Header values (RFC 9110 5.5) and head syntax.
    QTest::newRow("NUL in a header value")
        << post(QByteArray("X-A: a\0b\r\n", 10), "") << 400 << QByteArray();
    QTest::newRow("bare CR in a header value") << post("X-A: a\rb\r\n", "") << 400 << QByteArray();
    QTest::newRow("control character in a value") << post("X-A: a\x01"
                                                          "b\r\n",
                                                          "")
                                                  << 400 << QByteArray();
    QTest::newRow("obs-fold") << post("X-A: a\r\n b\r\n", "") << 400 << QByteArray();
    QTest::newRow("space before colon") << post("X-A : a\r\n", "") << 400 << QByteArray();
    QTest::newRow("empty header name") << post(": a\r\n", "") << 400 << QByteArray();
    QTest::newRow("no colon") << post("X-A a\r\n", "") << 400 << QByteArray();
    QTest::newRow("HTTP/0.9") << QByteArray("GET /\r\n\r\n") << 400 << QByteArray();
    QTest::newRow("HTTP/2.0 preamble")
        << QByteArray("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") << 505 << QByteArray();
    QTest::newRow("HTTP/1.2") << QByteArray("GET / HTTP/1.2\r\n\r\n") << 505 << QByteArray();
    QTest::newRow("garbage version") << QByteArray("GET / HTTQ/1.1\r\n\r\n") << 400 << QByteArray();
    QTest::newRow("two spaces") << QByteArray("GET  / HTTP/1.1\r\n\r\n") << 400 << QByteArray();
    QTest::newRow("method not a token") << QByteArray("G(T / HTTP/1.1\r\n\r\n") << 400 << QByteArray();
    QTest::newRow("control in target") << QByteArray("GET /a\x01 HTTP/1.1\r\n\r\n") << 400 << QByteArray();
    // RFC 9112 3.2: exactly one well-formed Host (HTTP/1.0 may omit it).
    QTest::newRow("HTTP/1.1 without Host")
        << QByteArray("GET /v1/models HTTP/1.1\r\n\r\n") << 400 << QByteArray();
    QTest::newRow("HTTP/1.0 without Host")
        << QByteArray("GET /v1/models HTTP/1.0\r\n\r\n") << 0 << QByteArray();
    QTest::newRow("two Host headers (loopback first)")
        << QByteArray("GET / HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nHost: evil.example\r\n\r\n") << 400
        << QByteArray();
    QTest::newRow("two equal Host headers")
        << QByteArray("GET / HTTP/1.1\r\nHost: localhost\r\nhost: localhost\r\n\r\n") << 400 << QByteArray();
    QTest::newRow("two Host headers in HTTP/1.0")
        << QByteArray("GET / HTTP/1.0\r\nHost: localhost\r\nHost: evil.example\r\n\r\n") << 400
        << QByteArray();
    QTest::newRow("Host [::1] with a tail")
        << QByteArray("GET / HTTP/1.1\r\nHost: [::1]evil.example\r\n\r\n") << 400 << QByteArray();
    QTest::newRow("Host [::1]:port") << QByteArray("GET / HTTP/1.1\r\nHost: [::1]:9000\r\n\r\n") << 0
                                     << QByteArray();
    QTest::newRow("Host with a path")
        << QByteArray("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n") << 400 << QByteArray();
    QTest::newRow("Host with user info")
        << QByteArray("GET / HTTP/1.1\r\nHost: user@localhost\r\n\r\n") << 400 << QByteArray();
    QTest::newRow("Host with a letter port")
        << QByteArray("GET / HTTP/1.1\r\nHost: localhost:9x\r\n\r\n") << 400 << QByteArray();
    QTest::newRow("Host with a backslash")
        << QByteArray("GET / HTTP/1.1\r\nHost: localhost\\evil\r\n\r\n") << 400 << QByteArray();
}

void tst_HttpConnection::parser()
{
    QFETCH(QByteArray, input);
    QFETCH(int, status);
    QFETCH(QByteArray, body);
    const Parsed parsed = feed(input);
    if (status != 0) {
        QCOMPARE(parsed.errorStatus, status);
        QVERIFY(parsed.requests.isEmpty());
        QVERIFY(!parsed.errorMessage.isEmpty());
        return;
    }
    QVERIFY2(parsed.errorStatus == 0, parsed.errorMessage.constData());
    QCOMPARE(parsed.requests.size(), 1);
    QCOMPARE(parsed.requests.first().body, body);
    QVERIFY(!parsed.needMore);
}

void tst_HttpConnection::splitFeedingGivesTheSameResult_data()
{
    parser_data();
}

void tst_HttpConnection::splitFeedingGivesTheSameResult()
{
    QFETCH(QByteArray, input);
    QFETCH(int, status);
    QFETCH(QByteArray, body);
    for (const int step : { 1, 2, 3, 7 }) {
        const Parsed parsed = feed(input, step);
        QCOMPARE(parsed.errorStatus, status);
        if (status == 0) {
            QCOMPARE(parsed.requests.size(), 1);
            QCOMPARE(parsed.requests.first().body, body);
        }
    }
}

void tst_HttpConnection::pipelinedRequests()
{
    const QByteArray input = post("Content-Length: 3\r\n", "abc")
        + "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
        + post("Transfer-Encoding: chunked\r\n", "2\r\nxy\r\n0\r\n\r\n");
    for (const int step : { 0, 1, 5 }) {
        const Parsed parsed = feed(input, step);
        QCOMPARE(parsed.errorStatus, 0);
        QCOMPARE(parsed.requests.size(), 3);
        QCOMPARE(parsed.requests.at(0).body, QByteArray("abc"));
        QCOMPARE(parsed.requests.at(1).target, QByteArray("/v1/models"));
        QCOMPARE(parsed.requests.at(2).body, QByteArray("xy"));
    }
}

void tst_HttpConnection::trailersDropped()
{
    const Parsed parsed = feed(
        post("Transfer-Encoding: chunked\r\n", "3\r\nabc\r\n0\r\nX-Checksum: 1\r\nAuthorization: x\r\n\r\n"));
    QCOMPARE(parsed.errorStatus, 0);
    QCOMPARE(parsed.requests.size(), 1);
    QCOMPARE(parsed.requests.first().body, QByteArray("abc"));
    QVERIFY(parsed.requests.first().header("X-Checksum").isEmpty());
    QVERIFY(parsed.requests.first().header("Authorization").isEmpty());

    // A trailer section past the head limit is refused before it is buffered.
    HttpLimits limits;
    limits.maxHeadBytes = 1024;
    const QByteArray huge = post("Transfer-Encoding: chunked\r\n", "0\r\nX-Big: " + QByteArray(4096, 'a'));
    const Parsed tooBig = feed(huge, 100, limits);
    QCOMPARE(tooBig.errorStatus, 431);
}

void tst_HttpConnection::headerCountLimit()
{
    QByteArray many;
    for (int i = 0; i < 10000; ++i)
        many += "X-H" + QByteArray::number(i) + ": v\r\n";
    HttpLimits limits;
    limits.maxHeadBytes = 1024 * 1024;
    QElapsedTimer clock;
    clock.start();
    const Parsed parsed = feed(post(many, ""), 0, limits);
    QCOMPARE(parsed.errorStatus, 431);
    QVERIFY(parsed.errorMessage.contains("too many"));
    // With the default head limit, 10,000 headers are over 64 KiB: refused as too large, also 431.
    QCOMPARE(feed(post(many, "")).errorStatus, 431);
    QByteArray hundred;
    for (int i = 0; i < 99; ++i) // + Host = 100 headers: the limit itself is fine
        hundred += "X-H" + QByteArray::number(i) + ": v\r\n";
    QCOMPARE(feed(post(hundred, "")).errorStatus, 0);
    QCOMPARE(feed(post(hundred + "X-One-Too-Many: v\r\n", "")).errorStatus, 431);
}

void tst_HttpConnection::headOfExactlyTheLimit()
{
    // Found by fuzzing: a head of exactly maxHeadBytes must not depend on how its bytes arrive.
    HttpLimits limits;
    limits.maxHeadBytes = 40;
    const QByteArray input = "GET / HTTP/1.1\r\nHost: aaaaaaaaaaaaaaaaa\r\n\r\n";
    for (const int step : { 0, 1, 2, 3 }) {
        const Parsed parsed = feed(input, step, limits);
        QCOMPARE(parsed.errorStatus, 0);
        QCOMPARE(parsed.requests.size(), 1);
    }
    QCOMPARE(feed("GET / HTTP/1.1\r\nHost: aaaaaaaaaaaaaaaaaa\r\n\r\n", 1, limits).errorStatus, 431);
}

void tst_HttpConnection::largePathWithinLimit()
{
    const QByteArray path = "/v1/" + QByteArray(100 * 1024, 'a');
    QCOMPARE(feed("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n").errorStatus,
             431); // over the 64 KiB head limit
    HttpLimits limits;
    limits.maxHeadBytes = 256 * 1024;
    const Parsed parsed = feed("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n", 4096, limits);
    QCOMPARE(parsed.errorStatus, 0);
    QCOMPARE(parsed.requests.first().target, path);
}

void tst_HttpConnection::bodyLimitBeforeTheBody()
{
    HttpLimits limits;
    limits.maxBodyBytes = 10;
    HttpRequestParser parser(limits);
    QByteArray head = post("Content-Length: 11\r\n", "");
    QCOMPARE(parser.parse(head), HttpRequestParser::Event::Error);
    QCOMPARE(parser.errorStatus(), 413);
    QCOMPARE(parser.errorDrainBytes(), 11); // the client is still sending: read and drop, then close

    HttpRequestParser waiting(limits);
    QByteArray expect = post("Content-Length: 11\r\nExpect: 100-continue\r\n", "");
    QCOMPARE(waiting.parse(expect), HttpRequestParser::Event::Error);
    QCOMPARE(waiting.errorDrainBytes(), 0); // it waits for "100 Continue": nothing to drain

    const Parsed chunked
        = feed(post("Transfer-Encoding: chunked\r\n", "6\r\nabcdef\r\n6\r\nabcdef\r\n"), 0, limits);
    QCOMPARE(chunked.errorStatus, 413);
}

bool tst_HttpConnection::connectPair(Pair *pair, const HttpLimits &limits, QTcpServer *sharedServer)
{
    QTcpServer *server = sharedServer;
    if (!server) {
        pair->server = std::make_unique<QTcpServer>();
        server = pair->server.get();
        if (!server->listen(QHostAddress::LocalHost, 0))
            return false;
    }
    pair->client = std::make_unique<QTcpSocket>();
    pair->client->connectToHost(QHostAddress::LocalHost, server->serverPort());
    if (!server->waitForNewConnection(5000))
        return false;
    QTcpSocket *socket = server->nextPendingConnection();
    pair->connection = new HttpConnection(socket, limits, server);
    connect(pair->connection, &HttpConnection::requestReceived, this,
            [pair](HttpConnection *connection, const HttpRequest &request) {
                pair->received.append(request);
                connection->sendResponse(200, { { "Content-Type", "text/plain" } }, "ok:" + request.target);
            });
    return pair->client->waitForConnected(5000);
}

void tst_HttpConnection::connectionPipeliningAfterErrorStops()
{
    Pair pair;
    QVERIFY(connectPair(&pair, HttpLimits()));
    // A request smuggled behind a framing error must never be handled.
    pair.client->write("GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
                       "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello"
                       "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n");
    QTRY_VERIFY(pair.client->state() == QAbstractSocket::UnconnectedState
                || pair.client->bytesAvailable() > 0);
    QTRY_COMPARE_WITH_TIMEOUT(pair.client->state(), QAbstractSocket::UnconnectedState, 5000);
    const QByteArray answer = pair.client->readAll();
    QCOMPARE(pair.received.size(), 1);
    QCOMPARE(pair.received.first().target, QByteArray("/first"));
    QVERIFY2(answer.contains("ok:/first"), answer.constData());
    QVERIFY2(answer.contains("HTTP/1.1 400"), answer.constData());
    QVERIFY(!answer.contains("smuggled"));
}

void tst_HttpConnection::connectionHeadDeadlineIsNotExtendedByBytes()
{
    HttpLimits limits;
    limits.headTimeoutMs = 600;
    Pair pair;
    QVERIFY(connectPair(&pair, limits));
    QElapsedTimer clock;
    clock.start();
    // One byte every 100 ms: each byte would have reset the old per-byte timer for ever.
    QTimer drip;
    QByteArray head = "GET /slow HTTP/1.1\r\nHost: x\r\nX-Padding: " + QByteArray(100, 'a');
    qsizetype sent = 0;
    connect(&drip, &QTimer::timeout, this, [&] {
        if (sent < head.size() && pair.client->state() == QAbstractSocket::ConnectedState)
            pair.client->write(head.mid(sent++, 1));
    });
    drip.start(100);
    QTRY_COMPARE_WITH_TIMEOUT(pair.client->state(), QAbstractSocket::UnconnectedState, 5000);
    drip.stop();
    QVERIFY2(clock.elapsed() < 3000, qPrintable(QString::number(clock.elapsed())));
    QVERIFY(pair.client->readAll().startsWith("HTTP/1.1 408"));
    QVERIFY(pair.received.isEmpty());
}

void tst_HttpConnection::connectionSlowBodyRefused()
{
    HttpLimits limits;
    limits.headTimeoutMs = 500;
    limits.minBodyBytesPerWindow = 1000;
    Pair pair;
    QVERIFY(connectPair(&pair, limits));
    pair.client->write("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc");
    QTRY_COMPARE_WITH_TIMEOUT(pair.client->state(), QAbstractSocket::UnconnectedState, 5000);
    QVERIFY(pair.client->readAll().startsWith("HTTP/1.1 408"));
    QVERIFY(pair.received.isEmpty());
}

void tst_HttpConnection::connectionIdleKeepAliveCloses()
{
    HttpLimits limits;
    limits.keepAliveIdleMs = 300;
    Pair pair;
    QVERIFY(connectPair(&pair, limits));
    pair.client->write("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    QTRY_VERIFY(pair.client->bytesAvailable() > 0);
    QCOMPARE(pair.received.size(), 1);
    QTRY_COMPARE_WITH_TIMEOUT(pair.client->state(), QAbstractSocket::UnconnectedState, 5000);
}

void tst_HttpConnection::connectionServesWhileAnotherIsSlow()
{
    HttpLimits limits;
    limits.headTimeoutMs = 800;
    Pair slow;
    QVERIFY(connectPair(&slow, limits));
    slow.client->write("GET /never-finished HTTP/1.1\r\nHost: x\r\n");
    Pair fast; // the same server (and thread) as the slow one
    QVERIFY(connectPair(&fast, limits, slow.server.get()));
    fast.client->write("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
    QTRY_VERIFY(fast.client->bytesAvailable() > 0);
    QVERIFY(fast.client->readAll().contains("ok:/fast"));
    QVERIFY(slow.client->state() == QAbstractSocket::ConnectedState);
    QTRY_COMPARE_WITH_TIMEOUT(slow.client->state(), QAbstractSocket::UnconnectedState, 5000);
}

QTEST_GUILESS_MAIN(tst_HttpConnection)
#include "tst_httpconnection.moc"
