// The libcurl upstream engine (issue 16's groundwork) against the mock upstream and raw servers: requests go
// out as the client wrote them (no Expect, Accept or Accept-Encoding added, header order and case kept),
// streamed events arrive as sent, a reader that stops makes curl stop reading the upstream (memory bounded
// while it stalls), 1xx interim answers are skipped, oversized headers fail one transfer, errors are precise.
#include "curlengine.h"
#include "mockupstream.h"
#include "upstreamfailure.h"
#include "upstreamrouter.h"

#include <QSignalSpy>
#include <QSslKey>
#include <QSslServer>
#include <QTcpServer>
#include <QTcpSocket>
#include <QtTest>

#include <cerrno>

using namespace it;
using keyrelay::CurlEngine;
using keyrelay::UpstreamRequestSpec;
using keyrelay::UpstreamTransfer;

namespace {
/// A server that answers every connection with @p answer once the request head has arrived.
class RawServer : public QObject
{
public:
    explicit RawServer(const QByteArray &answer) : m_answer(answer)
    {
        connect(&m_server, &QTcpServer::newConnection, this, [this] {
            while (QTcpSocket *socket = m_server.nextPendingConnection()) {
                connect(socket, &QTcpSocket::readyRead, socket, [this, socket] {
                    m_received += socket->readAll();
                    if (m_received.contains("\r\n\r\n") && !m_answered) {
                        m_answered = true;
                        socket->write(m_answer);
                    }
                });
            }
        });
        m_server.listen(QHostAddress::LocalHost, 0);
    }
    QUrl url() const { return QUrl(QStringLiteral("http://127.0.0.1:%1/v1/x").arg(m_server.serverPort())); }

private:
    QTcpServer m_server;
    QByteArray m_answer;
    QByteArray m_received;
    bool m_answered = false;
};
} // namespace

class CurlEngineTest : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void init();
    void cleanup();

    void requestGoesOutAsWritten();
    void streamedEventsArriveAsSent();
    void stalledReaderPausesTheUpstream();
    void interimAnswerSkipped();
    void oversizedHeadersFailOneTransfer();
    void refusedConnectionIsPrecise();
    void abortEndsOnceFromTheLoop();
    void certificateProblemsAreDescribed_data();
    void certificateProblemsAreDescribed();
    void http1HostsLeaveTheMultiplexedEngine();
    void plainHttpBurstDoesNotWaitForOneConnection();

private:
    UpstreamRequestSpec spec(const QByteArray &method, const QString &path) const
    {
        UpstreamRequestSpec request;
        request.method = method;
        request.url = m_mock->url(path);
        request.http2 = false;
        return request;
    }

    std::unique_ptr<MockUpstream> m_mock;
    std::unique_ptr<CurlEngine> m_engine;
};

void CurlEngineTest::init()
{
    m_mock = std::make_unique<MockUpstream>();
    QVERIFY(m_mock->listen());
    m_engine = std::make_unique<CurlEngine>();
}

void CurlEngineTest::cleanup()
{
    m_engine.reset();
    m_mock.reset();
}

void CurlEngineTest::requestGoesOutAsWritten()
{
    m_mock->setHandler([](const RecordedRequest &) {
        return MockResponse::fixed(201, "created",
                                   { { "X-Upstream", "yes" }, { "Content-Encoding", "gzip" } });
    });
    UpstreamRequestSpec request = spec("POST", QStringLiteral("/v1/chat/completions?x=1"));
    const QByteArray body = QByteArray(3000, 'b'); // over 1 KiB: curl would add Expect: 100-continue
    request.body = body;
    request.headers
        = { { "x-Custom-Case", "One" }, { "Authorization", "Bearer sk-test" }, { "X-Empty", "" } };
    std::unique_ptr<UpstreamTransfer> transfer(m_engine->start(request));
    QSignalSpy headers(transfer.get(), &UpstreamTransfer::headersReceived);
    QSignalSpy finished(transfer.get(), &UpstreamTransfer::finished);
    QVERIFY(finished.wait(5000));
    QCOMPARE(headers.count(), 1);
    QVERIFY2(transfer->result().ok(), qPrintable(transfer->result().message));
    QCOMPARE(transfer->status(), 201);
    QCOMPARE(transfer->header("X-Upstream"), QByteArray("yes"));
    QCOMPARE(transfer->header("Content-Encoding"), QByteArray("gzip")); // passed on, not decoded
    QCOMPARE(transfer->read(), QByteArray("created"));

    const RecordedRequest seen = m_mock->lastRequest();
    QCOMPARE(seen.method, QByteArray("POST"));
    QCOMPARE(seen.target, QByteArray("/v1/chat/completions?x=1"));
    QCOMPARE(seen.body, body);
    QVERIFY(!seen.hasHeader("Expect"));
    QVERIFY(!seen.hasHeader("Accept"));
    QVERIFY(!seen.hasHeader("Accept-Encoding"));
    QVERIFY(!seen.hasHeader("Content-Type"));
    QVERIFY(seen.hasHeader("X-Empty"));
    QStringList order;
    for (const auto &header : seen.headers) {
        if (header.first != "Host" && header.first != "Content-Length")
            order << QString::fromLatin1(header.first);
    }
    QCOMPARE(order,
             (QStringList { QStringLiteral("x-Custom-Case"), QStringLiteral("Authorization"),
                            QStringLiteral("X-Empty") }));
}

void CurlEngineTest::streamedEventsArriveAsSent()
{
    m_mock->setHandler([](const RecordedRequest &) {
        return MockResponse::sse(
            { { 0, "data: 1\n\n" }, { 150, "data: 2\n\n" }, { 300, "data: [DONE]\n\n" } });
    });
    std::unique_ptr<UpstreamTransfer> transfer(m_engine->start(spec("GET", QStringLiteral("/v1/stream"))));
    QElapsedTimer clock;
    clock.start();
    QList<qint64> arrivals;
    QByteArray received;
    connect(transfer.get(), &UpstreamTransfer::dataAvailable, this, [&] {
        received += transfer->read();
        arrivals << clock.elapsed();
    });
    QSignalSpy finished(transfer.get(), &UpstreamTransfer::finished);
    QVERIFY(finished.wait(5000));
    QCOMPARE(received, QByteArray("data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"));
    QVERIFY2(arrivals.size() >= 3, QByteArray::number(arrivals.size()).constData());
    QVERIFY2(arrivals.last() - arrivals.first() >= 250,
             QByteArray::number(arrivals.last() - arrivals.first()).constData());
}

void CurlEngineTest::stalledReaderPausesTheUpstream()
{
    // 16 MiB that nobody reads: curl holds at most the buffer limit (plus one chunk) and stops reading the
    // socket, measured while the reader stalls; then everything arrives once it reads.
    const qint64 total = 16 * 1024 * 1024;
    m_mock->setHandler([total](const RecordedRequest &) {
        MockResponse response = MockResponse::fixed(200, QByteArray(total, 'z'));
        response.mode = MockResponse::Mode::Chunked;
        response.chunkSize = 64 * 1024;
        return response;
    });
    UpstreamRequestSpec request = spec("GET", QStringLiteral("/v1/files/big"));
    request.bufferLimit = 256 * 1024;
    std::unique_ptr<UpstreamTransfer> transfer(m_engine->start(request));
    QTRY_VERIFY_WITH_TIMEOUT(transfer->isPaused(), 5000);
    const qint64 heldAtPause = transfer->bytesReceived();
    QTest::qWait(300); // the stall itself: nothing may arrive while nobody reads
    QCOMPARE(transfer->bytesReceived(), heldAtPause);
    QVERIFY2(transfer->bytesAvailable() <= request.bufferLimit + 64 * 1024,
             QByteArray::number(transfer->bytesAvailable()).constData());
    QVERIFY(!transfer->isFinished());
    qint64 got = 0;
    connect(transfer.get(), &UpstreamTransfer::dataAvailable, this, [&] { got += transfer->read().size(); });
    got += transfer->read().size();
    QSignalSpy finished(transfer.get(), &UpstreamTransfer::finished);
    QVERIFY(transfer->isFinished() || finished.wait(10000));
    got += transfer->read().size();
    QVERIFY2(transfer->result().ok(), qPrintable(transfer->result().message));
    QCOMPARE(got, total);
}

void CurlEngineTest::interimAnswerSkipped()
{
    RawServer server("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                     "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Final: yes\r\n\r\nfinal");
    UpstreamRequestSpec request;
    request.url = server.url();
    request.http2 = false;
    std::unique_ptr<UpstreamTransfer> transfer(m_engine->start(request));
    QSignalSpy finished(transfer.get(), &UpstreamTransfer::finished);
    QVERIFY(finished.wait(5000));
    QCOMPARE(transfer->status(), 200);
    QCOMPARE(transfer->header("X-Final"), QByteArray("yes"));
    QVERIFY(transfer->header("Link").isNull());
    QCOMPARE(transfer->read(), QByteArray("final"));
}

void CurlEngineTest::oversizedHeadersFailOneTransfer()
{
    QByteArray many;
    for (int i = 0; i < 40; ++i) // 320 KiB in lines of 8 KiB (curl's own limit is 100 KiB per line)
        many += "X-Big-" + QByteArray::number(i) + ": " + QByteArray(8 * 1024, 'h') + "\r\n";
    RawServer server("HTTP/1.1 200 OK\r\n" + many + "Content-Length: 2\r\n\r\nok");
    UpstreamRequestSpec request;
    request.url = server.url();
    request.http2 = false;
    std::unique_ptr<UpstreamTransfer> transfer(m_engine->start(request));
    m_mock->setHandler([](const RecordedRequest &) { return MockResponse::fixed(200, "other"); });
    std::unique_ptr<UpstreamTransfer> other(m_engine->start(spec("GET", QStringLiteral("/v1/models"))));
    QSignalSpy finished(transfer.get(), &UpstreamTransfer::finished);
    QSignalSpy otherFinished(other.get(), &UpstreamTransfer::finished);
    QVERIFY(finished.count() > 0 || finished.wait(5000));
    QVERIFY(transfer->result().headersTooLarge);
    QVERIFY(!transfer->result().ok());
    QVERIFY(otherFinished.count() > 0 || otherFinished.wait(5000));
    QVERIFY(other->result().ok());
    QCOMPARE(other->read(), QByteArray("other"));
}

void CurlEngineTest::refusedConnectionIsPrecise()
{
    QTcpServer closed;
    QVERIFY(closed.listen(QHostAddress::LocalHost, 0));
    const quint16 port = closed.serverPort();
    closed.close();
    UpstreamRequestSpec request;
    request.url = QUrl(QStringLiteral("http://127.0.0.1:%1/v1/models").arg(port));
    std::unique_ptr<UpstreamTransfer> transfer(m_engine->start(request));
    QSignalSpy finished(transfer.get(), &UpstreamTransfer::finished);
    QVERIFY(finished.wait(5000));
    QCOMPARE(transfer->result().curlCode, 7); // CURLE_COULDNT_CONNECT
    QCOMPARE(transfer->result().osErrno, long(ECONNREFUSED));
    QCOMPARE(transfer->status(), 0);
    QCOMPARE(m_engine->transfersInFlight(), 0);
}

void CurlEngineTest::abortEndsOnceFromTheLoop()
{
    m_mock->setHandler([](const RecordedRequest &) { return MockResponse::hold(); });
    std::unique_ptr<UpstreamTransfer> transfer(m_engine->start(spec("GET", QStringLiteral("/v1/slow"))));
    QTRY_COMPARE(m_mock->requestCount(), 1);
    QSignalSpy finished(transfer.get(), &UpstreamTransfer::finished);
    transfer->abort();
    QCOMPARE(finished.count(), 0); // not from inside abort()
    QVERIFY(finished.wait(2000));
    QVERIFY(transfer->result().aborted);
    QTest::qWait(50);
    QCOMPARE(finished.count(), 1);
    QCOMPARE(m_engine->transfersInFlight(), 0);
    QTRY_COMPARE(m_mock->openConnections(), 0); // the upstream connection is closed
}

void CurlEngineTest::certificateProblemsAreDescribed_data()
{
    QTest::addColumn<QString>("certificate");
    QTest::addColumn<int>("verify"); // the X509 verify result curl reports
    QTest::addColumn<QString>("expiry"); // what the certificate seen says (ISO, UTC), or empty
    QTest::addColumn<QStringList>("names");
    QTest::newRow("trusted") << QStringLiteral("server.pem") << 0 << QString() << QStringList();
    QTest::newRow("expired") << QStringLiteral("expired.pem") << 10 << QStringLiteral("2021-01-01T00:00:00Z")
                             << QStringList();
    // X509_V_ERR_IP_ADDRESS_MISMATCH: the name is checked in the handshake, before anything is sent.
    QTest::newRow("wrong host") << QStringLiteral("wronghost.pem") << 64 << QString()
                                << QStringList { QStringLiteral("wrong.example") };
}

void CurlEngineTest::certificateProblemsAreDescribed()
{
    // curl shows no certificate when verification fails; the engine records the upstream's own certificate
    // from the handshake so that KeyRelay can say what is wrong with it.
    QFETCH(QString, certificate);
    QFETCH(int, verify);
    QFETCH(QString, expiry);
    QFETCH(QStringList, names);
    const auto read = [](const QString &name) {
        QFile file(QStringLiteral(KEYRELAY_TEST_CERTS_DIR "/") + name);
        return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
    };
    QSslServer server;
    QSslConfiguration configuration = QSslConfiguration::defaultConfiguration();
    configuration.setLocalCertificate(QSslCertificate(read(certificate)));
    configuration.setPrivateKey(QSslKey(read(QStringLiteral("server.key")), QSsl::Ec));
    configuration.setPeerVerifyMode(QSslSocket::VerifyNone);
    server.setSslConfiguration(configuration);
    connect(&server, &QTcpServer::pendingConnectionAvailable, &server, [&server] {
        while (QTcpSocket *socket = server.nextPendingConnection()) {
            connect(socket, &QTcpSocket::readyRead, socket, [socket] {
                if (socket->readAll().contains("\r\n\r\n"))
                    socket->write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            });
        }
    });
    QVERIFY(server.listen(QHostAddress::LocalHost, 0));
    UpstreamRequestSpec request;
    request.url = QUrl(QStringLiteral("https://127.0.0.1:%1/v1/models").arg(server.serverPort()));
    request.caCertificatesPem = read(QStringLiteral("ca.pem"));
    QVERIFY(!request.caCertificatesPem.isEmpty());
    std::unique_ptr<UpstreamTransfer> transfer(m_engine->start(request));
    QSignalSpy finished(transfer.get(), &UpstreamTransfer::finished);
    QVERIFY(finished.wait(10000));
    const keyrelay::UpstreamResult result = transfer->result();
    if (certificate == QLatin1String("server.pem")) {
        QVERIFY2(result.ok(), qPrintable(result.message));
        QCOMPARE(transfer->read(), QByteArray("ok"));
        return;
    }
    QVERIFY(!result.ok());
    QCOMPARE(result.curlCode, 60); // CURLE_PEER_FAILED_VERIFICATION
    if (verify != 0)
        QCOMPARE(int(result.sslVerifyResult), verify);
    if (!expiry.isEmpty())
        QCOMPARE(result.certificateExpiry.toUTC().toString(Qt::ISODate), expiry);
    for (const QString &name : names)
        QVERIFY2(result.certificateNames.contains(name), qPrintable(result.certificateNames.join(u',')));
    // And said in upstreamfailure's words, as the Qt path says them.
    const keyrelay::NetworkFailure failure
        = keyrelay::describeUpstreamResult(result, request.url, QNetworkProxy(QNetworkProxy::NoProxy), 15);
    QCOMPARE(failure.code, QStringLiteral("upstream_tls_error"));
    if (certificate == QLatin1String("expired.pem"))
        QVERIFY2(failure.message.endsWith(QLatin1String("its certificate expired on 2021-01-01T00:00:00Z")),
                 qPrintable(failure.message));
    else
        QVERIFY2(
            failure.message.endsWith(QLatin1String("its certificate is for wrong.example, not 127.0.0.1")),
            qPrintable(failure.message));
}

void CurlEngineTest::http1HostsLeaveTheMultiplexedEngine()
{
    // Requests that may use HTTP/2 share at most UpstreamRouter::MaxMultiplexedConnectionsPerHost connections
    // per host; an https host that answers over HTTP/1.1 (one request per connection) must not stay held to
    // that: once it has answered, a burst of held requests all reach it at once.
    const auto read = [](const QString &name) {
        QFile file(QStringLiteral(KEYRELAY_TEST_CERTS_DIR "/") + name);
        return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
    };
    QSslServer server;
    QSslConfiguration configuration = QSslConfiguration::defaultConfiguration();
    configuration.setLocalCertificate(QSslCertificate(read(QStringLiteral("server.pem"))));
    configuration.setPrivateKey(QSslKey(read(QStringLiteral("server.key")), QSsl::Ec));
    configuration.setPeerVerifyMode(QSslSocket::VerifyNone);
    server.setSslConfiguration(configuration);
    int heads = 0;
    bool answer = true; // the first request is answered, the burst after it is held
    connect(&server, &QTcpServer::pendingConnectionAvailable, &server, [&] {
        while (QTcpSocket *socket = server.nextPendingConnection()) {
            connect(socket, &QTcpSocket::readyRead, socket, [&heads, &answer, socket] {
                if (!socket->readAll().contains("\r\n\r\n"))
                    return;
                ++heads;
                if (answer)
                    socket->write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            });
        }
    });
    QVERIFY(server.listen(QHostAddress::LocalHost, 0));
    keyrelay::UpstreamRouter router;
    UpstreamRequestSpec request;
    request.url = QUrl(QStringLiteral("https://127.0.0.1:%1/v1/models").arg(server.serverPort()));
    request.http2 = true;
    request.caCertificatesPem = read(QStringLiteral("ca.pem"));
    std::unique_ptr<keyrelay::UpstreamCall> first(router.startCall(request));
    QSignalSpy finished(first.get(), &keyrelay::UpstreamCall::finished);
    QVERIFY(finished.wait(10000));
    QCOMPARE(first->httpVersion(), QByteArray("1.1"));
    QVERIFY(router.http1Hosts().contains(QStringLiteral("127.0.0.1:%1").arg(server.serverPort())));

    answer = false;
    constexpr int Burst = keyrelay::UpstreamRouter::MaxMultiplexedConnectionsPerHost + 8;
    std::vector<std::unique_ptr<keyrelay::UpstreamCall>> held;
    for (int i = 0; i < Burst; ++i)
        held.emplace_back(router.startCall(request));
    QTRY_COMPARE_WITH_TIMEOUT(heads, 1 + Burst, 10000);
}

void CurlEngineTest::plainHttpBurstDoesNotWaitForOneConnection()
{
    // HTTP/2 allowed (the default) but a plain http:// upstream: every request of a burst goes out at once
    // on its own connection, none waits for the first one's connection to say whether it multiplexes
    // (libcurl's PIPEWAIT would hold them while the first answer is pending).
    m_mock->setHandler([](const RecordedRequest &) { return MockResponse::hold(); });
    UpstreamRequestSpec request = spec("POST", QStringLiteral("/v1/chat/completions"));
    request.http2 = true;
    request.body = "{}";
    std::vector<std::unique_ptr<UpstreamTransfer>> held;
    for (int i = 0; i < 5; ++i)
        held.emplace_back(m_engine->start(request));
    QTRY_COMPARE_WITH_TIMEOUT(m_mock->requestCount(), 5, 5000);
    QCOMPARE(m_mock->openConnections(), 5);
}

QTEST_GUILESS_MAIN(CurlEngineTest)
#include "tst_it_curlengine.moc"
