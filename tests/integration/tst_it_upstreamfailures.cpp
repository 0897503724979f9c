// Requests that get no HTTP answer from the upstream say where they failed: the upstream network proxy
// (refused, asks for credentials, refuses them, closes the connection, never answers a CONNECT) with its
// address, or TLS with the certificate problem (untrusted, expired, for another host); neither is retried
// on another key. Also the working case over TLS (a JSON answer and an SSE stream from an HTTPS
// upstream) and a smoke test of many failed TLS handshakes in a row.
//
// Qt 6.4 reports several proxy failures with the codes of a direct connection (ConnectionRefusedError,
// RemoteHostClosedError) or as UnknownNetworkError with a text, and a proxy's 407 to a plain-http request
// first as a response: each such case has a row here.
//
// The TLS certificates come from support/certs/make_certs.sh (committed, so no openssl is needed here).
#include "mockupstream.h"
#include "proxyharness.h"
#include "rawclient.h"

#include <QFile>
#include <QSslCertificate>
#include <QSslConfiguration>
#include <QSslKey>
#include <QSslServer>
#include <QSslSocket>
#include <QTcpServer>
#include <QTcpSocket>
#include <QTimer>
#include <QtTest>

#include <memory>

#ifndef KEYRELAY_TEST_CERTS_DIR
#error "KEYRELAY_TEST_CERTS_DIR must name tests/integration/support/certs"
#endif

using namespace it;

namespace {

const QByteArray ChatBody = R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]})";
const QByteArray StreamChatBody
    = R"({"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]})";
const QByteArray TlsJsonAnswer
    = R"({"id":"chatcmpl-tls","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,)"
      R"("message":{"role":"assistant","content":"hello over TLS"},"finish_reason":"stop"}],)"
      R"("usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})";

QList<QByteArray> sseEvents()
{
    QList<QByteArray> events;
    for (const char *piece : { "Hel", "lo ", "over ", "TLS" }) {
        events.append(R"(data: {"id":"chatcmpl-tls","object":"chat.completion.chunk","choices":[{"index":0,)"
                      R"("delta":{"content":")"
                      + QByteArray(piece) + "\"}}]}\n\n");
    }
    events.append("data: [DONE]\n\n");
    return events;
}

/// A loopback port that nothing listens on.
quint16 closedPort()
{
    QTcpServer server;
    if (!server.listen(QHostAddress(QHostAddress::LocalHost), 0))
        return 0;
    const quint16 port = server.serverPort();
    server.close();
    return port;
}

/// The value of header @p name in a request head (request line + header lines), or a null QByteArray.
QByteArray headValue(const QByteArray &head, const QByteArray &name)
{
    const QList<QByteArray> lines = head.split('\n');
    for (qsizetype i = 1; i < lines.size(); ++i) {
        const QByteArray line = lines.at(i).trimmed();
        const qsizetype colon = line.indexOf(':');
        if (colon > 0 && line.left(colon).trimmed().toLower() == name.toLower())
            return line.mid(colon + 1).trimmed();
    }
    return QByteArray();
}

/// Splits complete requests (head + Content-Length body) off the front of @p buffer.
struct RequestReader
{
    QByteArray buffer;
    QByteArray head;
    qint64 bodyLeft = -1; ///< -1: reading a head

    /// True when a whole request is available; then @p head and @p body hold it.
    bool next(QByteArray *headOut, QByteArray *bodyOut)
    {
        if (bodyLeft < 0) {
            const qsizetype end = buffer.indexOf("\r\n\r\n");
            if (end < 0)
                return false;
            head = buffer.left(end);
            buffer.remove(0, end + 4);
            bodyLeft = qMax<qint64>(0, headValue(head, "Content-Length").toLongLong());
        }
        if (buffer.size() < bodyLeft)
            return false;
        *headOut = head;
        *bodyOut = buffer.left(bodyLeft);
        buffer.remove(0, bodyLeft);
        bodyLeft = -1;
        return true;
    }
};

} // namespace

/// Relays "the response is complete" and "the connection closed" of a RawClient as one signal.
class ClientDone : public QObject
{
    Q_OBJECT
Q_SIGNALS:
    void done();
};

/// Stands in for the user's HTTP network proxy: answers every request (CONNECT or a plain forward) with
/// 407, takes connections and never answers, or closes the connection once a request has come.
class FakeHttpProxy : public QObject
{
    Q_OBJECT
public:
    enum class Behaviour { RequireCredentials, Silent, CloseOnRequest };

    explicit FakeHttpProxy(Behaviour behaviour) : m_behaviour(behaviour)
    {
        connect(&m_server, &QTcpServer::newConnection, this, &FakeHttpProxy::onNewConnection);
    }

    bool listen() { return m_server.listen(QHostAddress(QHostAddress::LocalHost), 0); }
    quint16 port() const { return m_server.serverPort(); }
    /// "127.0.0.1:PORT", as the proxy's messages name it.
    QString address() const { return QStringLiteral("127.0.0.1:%1").arg(port()); }
    int connectionCount() const { return m_connections; }
    /// Every request head received (request line and headers), in order.
    QList<QByteArray> heads() const { return m_heads; }

private:
    void onNewConnection()
    {
        while (QTcpSocket *socket = m_server.nextPendingConnection()) {
            ++m_connections;
            auto reader = std::make_shared<RequestReader>();
            connect(socket, &QTcpSocket::disconnected, socket, &QObject::deleteLater);
            connect(socket, &QTcpSocket::readyRead, this, [this, socket, reader] {
                reader->buffer += socket->readAll();
                QByteArray head;
                QByteArray body;
                while (socket->isOpen() && reader->next(&head, &body)) {
                    m_heads.append(head);
                    if (m_behaviour == Behaviour::RequireCredentials) {
                        socket->write("HTTP/1.1 407 Proxy Authentication Required\r\n"
                                      "Proxy-Authenticate: Basic realm=x\r\n"
                                      "Content-Length: 0\r\n\r\n");
                    } else if (m_behaviour == Behaviour::CloseOnRequest) {
                        socket->close();
                    }
                }
            });
        }
    }

    QTcpServer m_server;
    Behaviour m_behaviour;
    int m_connections = 0;
    QList<QByteArray> m_heads;
};

/// A tiny HTTPS upstream on QSslServer (HTTP/1.1, keep-alive): a fixed JSON 200, or a short SSE stream
/// (chunked, one event every 20 ms). Counts the TLS handshakes it was asked for.
class TlsUpstream : public QObject
{
    Q_OBJECT
public:
    enum class Answer { Json, Stream };

    TlsUpstream(const QSslCertificate &certificate, const QSslKey &key)
    {
        QSslConfiguration configuration = QSslConfiguration::defaultConfiguration();
        configuration.setLocalCertificate(certificate);
        configuration.setPrivateKey(key);
        configuration.setPeerVerifyMode(QSslSocket::VerifyNone);
        m_server.setSslConfiguration(configuration);
        connect(&m_server, &QSslServer::startedEncryptionHandshake, this,
                [this](QSslSocket *) { ++m_handshakes; });
        // Qt 6.4: newConnection() comes when the TCP connection is accepted, pendingConnectionAvailable()
        // once its handshake has succeeded and nextPendingConnection() has it.
        connect(&m_server, &QTcpServer::pendingConnectionAvailable, this, &TlsUpstream::onNewConnection);
    }

    bool listen() { return m_server.listen(QHostAddress(QHostAddress::LocalHost), 0); }
    quint16 port() const { return m_server.serverPort(); }
    QUrl url() const { return QUrl(QStringLiteral("https://127.0.0.1:%1").arg(port())); }
    void setAnswer(Answer answer) { m_answer = answer; }

    /// TLS handshakes started (one per TCP connection), and those that completed.
    int handshakes() const { return m_handshakes; }
    int encryptedConnections() const { return m_encrypted; }
    QList<QByteArray> heads() const { return m_heads; }
    QList<QByteArray> bodies() const { return m_bodies; }

private:
    void onNewConnection()
    {
        while (QTcpSocket *next = m_server.nextPendingConnection()) {
            auto *socket = qobject_cast<QSslSocket *>(next);
            if (!socket || !socket->isEncrypted()) {
                next->deleteLater();
                continue;
            }
            ++m_encrypted;
            auto reader = std::make_shared<RequestReader>();
            connect(socket, &QTcpSocket::disconnected, socket, &QObject::deleteLater);
            const auto onReadyRead = [this, socket, reader] {
                reader->buffer += socket->readAll();
                QByteArray head;
                QByteArray body;
                while (reader->next(&head, &body)) {
                    m_heads.append(head);
                    m_bodies.append(body);
                    answer(socket);
                }
            };
            connect(socket, &QTcpSocket::readyRead, this, onReadyRead);
            // The request may have come with the end of the handshake, before this connection existed.
            if (socket->bytesAvailable() > 0)
                onReadyRead();
        }
    }

    void answer(QSslSocket *socket)
    {
        if (m_answer == Answer::Json) {
            socket->write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                          + QByteArray::number(TlsJsonAnswer.size()) + "\r\n\r\n" + TlsJsonAnswer);
            return;
        }
        socket->write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n");
        const QList<QByteArray> events = sseEvents();
        for (qsizetype i = 0; i < events.size(); ++i) {
            const QByteArray chunk
                = QByteArray::number(events.at(i).size(), 16) + "\r\n" + events.at(i) + "\r\n";
            QTimer::singleShot(int(20 * (i + 1)), socket, [socket, chunk] { socket->write(chunk); });
        }
        QTimer::singleShot(int(20 * (events.size() + 1)), socket, [socket] { socket->write("0\r\n\r\n"); });
    }

    QSslServer m_server;
    Answer m_answer = Answer::Json;
    int m_handshakes = 0;
    int m_encrypted = 0;
    QList<QByteArray> m_heads;
    QList<QByteArray> m_bodies;
};

class UpstreamFailuresTest : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void init();
    void cleanup();

    // The upstream network proxy.
    void proxyRefusesConnection_data();
    void proxyRefusesConnection();
    void proxyAsksForCredentialsNoneSet_data();
    void proxyAsksForCredentialsNoneSet();
    void proxyRefusesCredentials_data();
    void proxyRefusesCredentials();
    void proxyClosesConnection_data();
    void proxyClosesConnection();
    void proxyNeverAnswersConnect();

    // TLS with the upstream.
    void tlsTrustedJson();
    void tlsTrustedStream();
    void tlsCertificateProblem_data();
    void tlsCertificateProblem();
    void tlsFailureNotRetriedOnAnotherKey();
    void manyTlsFailuresThenStillServes();

private:
    struct Outcome
    {
        bool complete = false; ///< the client got a whole response
        int status = 0;
        QByteArray body;
        QString type;
        QString code;
        QString message;
        keyrelay::RequestRecord record;
    };

    bool startProxy(const QUrl &upstream, const QString &upstreamProxy = QString(),
                    int connectTimeoutSec = 5);
    /// Sends a chat request and waits for the answer (whole, or the connection closing) and its record.
    void sendChat(Outcome *outcome, const QByteArray &body = ChatBody, int timeoutMs = 10000);
    /// The answer is a KeyRelay error @p status / @p code with exactly @p message after a single upstream
    /// attempt, and the request record has the same status and message.
    void verifyFailure(const Outcome &outcome, int status, const QString &code, const QString &message);
    QUrl upstreamFor(const QString &scheme) const;
    void addUpstreamSchemes();

    std::unique_ptr<TlsUpstream> startTlsUpstream(const QSslCertificate &certificate);

    QSslCertificate m_ca;
    QSslCertificate m_serverCert;
    QSslCertificate m_expiredCert;
    QSslCertificate m_wrongHostCert;
    QSslCertificate m_selfSignedCert;
    QSslKey m_key;

    std::unique_ptr<MockUpstream> m_mock;
    std::unique_ptr<ProxyHarness> m_proxy;
};

void UpstreamFailuresTest::initTestCase()
{
    QVERIFY2(QSslSocket::supportsSsl(), "these tests need a TLS backend");
    const auto read = [](const char *name) {
        QFile file(QStringLiteral(KEYRELAY_TEST_CERTS_DIR "/") + QLatin1String(name));
        return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
    };
    m_ca = QSslCertificate(read("ca.pem"));
    m_serverCert = QSslCertificate(read("server.pem"));
    m_expiredCert = QSslCertificate(read("expired.pem"));
    m_wrongHostCert = QSslCertificate(read("wronghost.pem"));
    m_selfSignedCert = QSslCertificate(read("selfsigned.pem"));
    m_key = QSslKey(read("server.key"), QSsl::Ec);
    for (const QSslCertificate *certificate :
         { &m_ca, &m_serverCert, &m_expiredCert, &m_wrongHostCert, &m_selfSignedCert })
        QVERIFY2(!certificate->isNull(), KEYRELAY_TEST_CERTS_DIR);
    QVERIFY(!m_key.isNull());
    QCOMPARE(m_expiredCert.expiryDate().toUTC(), QDateTime(QDate(2021, 1, 1), QTime(0, 0), Qt::UTC));

    // The proxy's network managers use the default configuration: make it trust the test CA.
    QSslConfiguration configuration = QSslConfiguration::defaultConfiguration();
    configuration.addCaCertificates({ m_ca });
    QSslConfiguration::setDefaultConfiguration(configuration);
}

void UpstreamFailuresTest::init()
{
    m_mock = std::make_unique<MockUpstream>();
    QVERIFY(m_mock->listen());
    m_proxy = std::make_unique<ProxyHarness>(QStringList { QStringLiteral("sk-upfail-key-000000000001") });
}

void UpstreamFailuresTest::cleanup()
{
    m_proxy.reset();
    m_mock.reset();
}

bool UpstreamFailuresTest::startProxy(const QUrl &upstream, const QString &upstreamProxy,
                                      int connectTimeoutSec)
{
    keyrelay::ProxyConfig config = testConfig(upstream);
    config.upstreamProxy = upstreamProxy;
    config.connectTimeoutSec = connectTimeoutSec;
    QString error;
    const bool ok = m_proxy->start(config, &error);
    if (!ok)
        qWarning() << error;
    return ok;
}

void UpstreamFailuresTest::sendChat(Outcome *outcome, const QByteArray &body, int timeoutMs)
{
    const qsizetype recordsBefore = m_proxy->records.size();
    QSignalSpy recorded(&m_proxy->service, &keyrelay::ProxyService::requestFinished);
    RawClient client;
    ClientDone relay;
    connect(&client, &RawClient::responseFinished, &relay, &ClientDone::done);
    connect(&client, &RawClient::connectionClosed, &relay, &ClientDone::done);
    QSignalSpy done(&relay, &ClientDone::done);
    client.send(m_proxy->port(),
                buildRequest("POST", "/v1/chat/completions", m_proxy->port(),
                             { { "Content-Type", "application/json" } }, body));
    // QSignalSpy::wait() runs the event loop without the pauses of RawClient::waitFinished(), so that
    // the TLS upstream (in this thread) answers each handshake step at once.
    QVERIFY(done.wait(timeoutMs));
    outcome->complete = client.finished();
    outcome->status = client.status();
    outcome->body = client.body();
    const QJsonObject error = errorObject(client.body());
    outcome->type = error.value(QStringLiteral("type")).toString();
    outcome->code = error.value(QStringLiteral("code")).toString();
    outcome->message = error.value(QStringLiteral("message")).toString();
    // The record comes from the proxy thread; the harness stores it before the spy sees the signal.
    if (m_proxy->records.size() == recordsBefore)
        QVERIFY(recorded.wait(5000));
    QCOMPARE(m_proxy->records.size(), recordsBefore + 1);
    outcome->record = m_proxy->records.last();
}

void UpstreamFailuresTest::verifyFailure(const Outcome &outcome, int status, const QString &code,
                                         const QString &message)
{
    // One check for what the client sees and that no other key was tried (a proxy or TLS failure is not
    // the key's), in one assertion.
    QVERIFY2(outcome.complete && outcome.status == status && outcome.code == code
                 && outcome.message == message && outcome.record.attempts == 1,
             qPrintable(QStringLiteral("expected %1 %2 \"%3\", 1 attempt; got %4 %5 \"%6\"%7 (record: %8 "
                                       "\"%9\", %10 attempt(s))")
                            .arg(status)
                            .arg(code, message)
                            .arg(outcome.status)
                            .arg(outcome.code, outcome.message,
                                 outcome.complete ? QString() : QStringLiteral(", response incomplete"))
                            .arg(outcome.record.status)
                            .arg(outcome.record.error)
                            .arg(outcome.record.attempts)));
    QCOMPARE(outcome.type, QStringLiteral("upstream_error"));
    QCOMPARE(outcome.record.status, status);
    QCOMPARE(outcome.record.error, message);
    QCOMPARE(outcome.record.responseBytes, qint64(outcome.body.size()));
}

QUrl UpstreamFailuresTest::upstreamFor(const QString &scheme) const
{
    // Through a proxy, an http upstream is forwarded as "POST http://..." and an https one is tunnelled
    // with CONNECT; either way the proxy fails before anything reaches the upstream.
    return scheme == QLatin1String("https") ? QUrl(QStringLiteral("https://127.0.0.1:%1").arg(closedPort()))
                                            : m_mock->url();
}

void UpstreamFailuresTest::addUpstreamSchemes()
{
    QTest::addColumn<QString>("scheme");
    QTest::newRow("http upstream") << QStringLiteral("http");
    QTest::newRow("https upstream (CONNECT)") << QStringLiteral("https");
}

std::unique_ptr<TlsUpstream> UpstreamFailuresTest::startTlsUpstream(const QSslCertificate &certificate)
{
    auto upstream = std::make_unique<TlsUpstream>(certificate, m_key);
    if (!upstream->listen())
        return nullptr;
    return upstream;
}

// --- the upstream network proxy ---------------------------------------------------------------------

void UpstreamFailuresTest::proxyRefusesConnection_data()
{
    QTest::addColumn<QString>("proxyScheme");
    QTest::addColumn<QString>("scheme");
    QTest::addColumn<QString>("proxyKind");
    const QString http = QStringLiteral("http");
    QTest::newRow("http proxy, http upstream") << http << http << QStringLiteral("HTTP");
    QTest::newRow("http proxy, https upstream (CONNECT)")
        << http << QStringLiteral("https") << QStringLiteral("HTTP");
    QTest::newRow("socks5 proxy, http upstream")
        << QStringLiteral("socks5") << http << QStringLiteral("SOCKS5");
}

void UpstreamFailuresTest::proxyRefusesConnection()
{
    QFETCH(QString, proxyScheme);
    QFETCH(QString, scheme);
    QFETCH(QString, proxyKind);
    const quint16 proxyPort = closedPort();
    QVERIFY(proxyPort != 0);
    // Two keys: a proxy failure must not be retried on the second one.
    m_proxy->setKeys(
        { QStringLiteral("sk-upfail-key-000000000001"), QStringLiteral("sk-upfail-key-000000000002") });
    QVERIFY(
        startProxy(upstreamFor(scheme), QStringLiteral("%1://127.0.0.1:%2").arg(proxyScheme).arg(proxyPort)));
    Outcome outcome;
    sendChat(&outcome);
    if (QTest::currentTestFailed())
        return;
    QCOMPARE(m_mock->totalConnections(), 0);
    verifyFailure(outcome, 502, QStringLiteral("upstream_proxy_error"),
                  QStringLiteral("the %1 proxy 127.0.0.1:%2 refused the connection (is it running?)")
                      .arg(proxyKind)
                      .arg(proxyPort));
}

void UpstreamFailuresTest::proxyAsksForCredentialsNoneSet_data()
{
    addUpstreamSchemes();
}

void UpstreamFailuresTest::proxyAsksForCredentialsNoneSet()
{
    QFETCH(QString, scheme);
    FakeHttpProxy fakeProxy(FakeHttpProxy::Behaviour::RequireCredentials);
    QVERIFY(fakeProxy.listen());
    QVERIFY(startProxy(upstreamFor(scheme), QStringLiteral("http://%1").arg(fakeProxy.address())));
    Outcome outcome;
    sendChat(&outcome);
    if (QTest::currentTestFailed())
        return;
    QVERIFY(!fakeProxy.heads().isEmpty());
    for (const QByteArray &head : fakeProxy.heads())
        QVERIFY2(headValue(head, "Proxy-Authorization").isNull(), head.constData());
    QCOMPARE(m_mock->totalConnections(), 0);
    verifyFailure(outcome, 502, QStringLiteral("upstream_proxy_error"),
                  QStringLiteral("the HTTP proxy %1 asks for credentials and none are set (give them in the "
                                 "upstream proxy setting: http://user:password@host:port)")
                      .arg(fakeProxy.address()));
}

void UpstreamFailuresTest::proxyRefusesCredentials_data()
{
    addUpstreamSchemes();
}

void UpstreamFailuresTest::proxyRefusesCredentials()
{
    QFETCH(QString, scheme);
    FakeHttpProxy fakeProxy(FakeHttpProxy::Behaviour::RequireCredentials);
    QVERIFY(fakeProxy.listen());
    QVERIFY(startProxy(upstreamFor(scheme), QStringLiteral("http://bob:wrong@%1").arg(fakeProxy.address())));
    Outcome outcome;
    sendChat(&outcome);
    if (QTest::currentTestFailed())
        return;
    // The credentials were really offered (after the first 407), and refused.
    const QByteArray credentials = QByteArray("Basic ") + QByteArray("bob:wrong").toBase64();
    bool offered = false;
    for (const QByteArray &head : fakeProxy.heads())
        offered = offered || headValue(head, "Proxy-Authorization") == credentials;
    QVERIFY(offered);
    // The password is shown nowhere.
    QVERIFY2(!outcome.body.contains("wrong"), outcome.body.constData());
    QVERIFY(!outcome.record.error.contains(QLatin1String("wrong")));
    QVERIFY(!outcome.record.toLogLine().contains(QLatin1String("wrong")));
    QCOMPARE(m_mock->totalConnections(), 0);
    verifyFailure(
        outcome, 502, QStringLiteral("upstream_proxy_error"),
        QStringLiteral("the HTTP proxy %1 refused the credentials (user \"bob\")").arg(fakeProxy.address()));
}

void UpstreamFailuresTest::proxyClosesConnection_data()
{
    addUpstreamSchemes();
}

void UpstreamFailuresTest::proxyClosesConnection()
{
    QFETCH(QString, scheme);
    FakeHttpProxy fakeProxy(FakeHttpProxy::Behaviour::CloseOnRequest);
    QVERIFY(fakeProxy.listen());
    const QUrl upstream = upstreamFor(scheme);
    m_proxy->setKeys(
        { QStringLiteral("sk-upfail-key-000000000001"), QStringLiteral("sk-upfail-key-000000000002") });
    // Also for a CONNECT the proxy never answers (an https upstream): the tunnel never opened.
    QVERIFY(startProxy(upstream, QStringLiteral("http://%1").arg(fakeProxy.address())));
    Outcome outcome;
    sendChat(&outcome, ChatBody, 8000);
    if (QTest::currentTestFailed())
        return;
    QVERIFY(!fakeProxy.heads().isEmpty());
    QCOMPARE(m_mock->totalConnections(), 0);
    verifyFailure(
        outcome, 502, QStringLiteral("upstream_proxy_error"),
        QStringLiteral("the HTTP proxy %1 closed the connection before the upstream 127.0.0.1:%2 answered")
            .arg(fakeProxy.address())
            .arg(upstream.port()));
}

void UpstreamFailuresTest::proxyNeverAnswersConnect()
{
    FakeHttpProxy fakeProxy(FakeHttpProxy::Behaviour::Silent);
    QVERIFY(fakeProxy.listen());
    const QUrl upstream(QStringLiteral("https://127.0.0.1:%1").arg(closedPort()));
    QVERIFY(startProxy(upstream, QStringLiteral("http://%1").arg(fakeProxy.address()), 1));
    Outcome outcome;
    sendChat(&outcome, ChatBody, 8000);
    if (QTest::currentTestFailed())
        return;
    verifyFailure(outcome, 504, QStringLiteral("upstream_proxy_timeout"),
                  QStringLiteral("the HTTP proxy %1 did not get the request through to the upstream %2 "
                                 "within 1 s (the proxy accepted the connection but did not answer)")
                      .arg(fakeProxy.address(), upstream.toString()));
    // Qt asked the proxy for a tunnel, and nothing more.
    QCOMPARE(fakeProxy.connectionCount(), 1);
    QCOMPARE(fakeProxy.heads().size(), 1);
    const QByteArray connectLine
        = QByteArray("CONNECT 127.0.0.1:") + QByteArray::number(upstream.port()) + " HTTP/1.1";
    QVERIFY2(fakeProxy.heads().constFirst().startsWith(connectLine),
             fakeProxy.heads().constFirst().constData());
}

// --- TLS ----------------------------------------------------------------------------------------------

void UpstreamFailuresTest::tlsTrustedJson()
{
    auto upstream = startTlsUpstream(m_serverCert);
    QVERIFY(upstream);
    QVERIFY(startProxy(upstream->url()));
    Outcome outcome;
    sendChat(&outcome);
    if (QTest::currentTestFailed())
        return;
    QCOMPARE(outcome.status, 200);
    QCOMPARE(outcome.body, TlsJsonAnswer);
    QCOMPARE(outcome.record.status, 200);
    QVERIFY2(outcome.record.error.isEmpty(), qPrintable(outcome.record.error));
    QCOMPARE(outcome.record.totalTokens, qint64(7));
    // The upstream got the request as sent, with the key.
    QCOMPARE(upstream->heads().size(), 1);
    QVERIFY(upstream->heads().constFirst().startsWith("POST /v1/chat/completions HTTP/1.1"));
    QCOMPARE(headValue(upstream->heads().constFirst(), "Authorization"),
             QByteArray("Bearer sk-upfail-key-000000000001"));
    QCOMPARE(upstream->bodies().constFirst(), ChatBody);
    QCOMPARE(upstream->handshakes(), 1);
    QCOMPARE(upstream->encryptedConnections(), 1);
}

void UpstreamFailuresTest::tlsTrustedStream()
{
    auto upstream = startTlsUpstream(m_serverCert);
    QVERIFY(upstream);
    upstream->setAnswer(TlsUpstream::Answer::Stream);
    QVERIFY(startProxy(upstream->url()));
    Outcome outcome;
    sendChat(&outcome, StreamChatBody);
    if (QTest::currentTestFailed())
        return;
    QCOMPARE(outcome.status, 200);
    QCOMPARE(outcome.body, sseEvents().join());
    QCOMPARE(outcome.record.status, 200);
    QVERIFY(outcome.record.streamed);
    QVERIFY2(outcome.record.error.isEmpty(), qPrintable(outcome.record.error));
    QCOMPARE(upstream->heads().size(), 1);
    QCOMPARE(upstream->encryptedConnections(), 1);
}

void UpstreamFailuresTest::tlsCertificateProblem_data()
{
    QTest::addColumn<QString>("certificate"); // which of the test certificates the upstream shows
    QTest::addColumn<QString>("problem"); // what the answer must say about it
    QTest::newRow("self-signed") << QStringLiteral("selfsigned")
                                 << QStringLiteral("its certificate is not trusted (self-signed or from an "
                                                   "authority this machine does not trust)");
    QTest::newRow("expired") << QStringLiteral("expired")
                             << QStringLiteral("its certificate expired on 2021-01-01T00:00:00Z");
    QTest::newRow("wrong host") << QStringLiteral("wronghost")
                                << QStringLiteral("its certificate is for wrong.example, not 127.0.0.1");
}

void UpstreamFailuresTest::tlsCertificateProblem()
{
    QFETCH(QString, certificate);
    QFETCH(QString, problem);
    const QSslCertificate &shown = certificate == QLatin1String("selfsigned") ? m_selfSignedCert
        : certificate == QLatin1String("expired")                             ? m_expiredCert
                                                                              : m_wrongHostCert;
    auto upstream = startTlsUpstream(shown);
    QVERIFY(upstream);
    QVERIFY(startProxy(upstream->url()));
    Outcome outcome;
    sendChat(&outcome);
    if (QTest::currentTestFailed())
        return;
    verifyFailure(
        outcome, 502, QStringLiteral("upstream_tls_error"),
        QStringLiteral("TLS with the upstream 127.0.0.1:%1 failed: %2").arg(upstream->port()).arg(problem));
    // The handshake failed: nothing was sent over it.
    QCOMPARE(upstream->encryptedConnections(), 0);
    QCOMPARE(upstream->heads().size(), 0);
}

void UpstreamFailuresTest::tlsFailureNotRetriedOnAnotherKey()
{
    auto upstream = startTlsUpstream(m_selfSignedCert);
    QVERIFY(upstream);
    m_proxy->setKeys(
        { QStringLiteral("sk-upfail-key-000000000001"), QStringLiteral("sk-upfail-key-000000000002") });
    QVERIFY(startProxy(upstream->url()));
    for (int i = 1; i <= 3; ++i) {
        Outcome outcome;
        sendChat(&outcome);
        if (QTest::currentTestFailed())
            return;
        QCOMPARE(outcome.status, 502);
        QCOMPARE(outcome.code, QStringLiteral("upstream_tls_error"));
        QCOMPARE(outcome.record.attempts, 1);
        // One handshake per client request: a retry on the second key would have made another one
        // before the answer.
        QCOMPARE(upstream->handshakes(), i);
    }
    QCOMPARE(upstream->encryptedConnections(), 0);
}

void UpstreamFailuresTest::manyTlsFailuresThenStillServes()
{
    // A smoke test of the connection cache clearing after failed handshakes: 200 of them in a row, then
    // a normal request. (Memory is not measured here.)
    auto upstream = startTlsUpstream(m_selfSignedCert);
    QVERIFY(upstream);
    QVERIFY(startProxy(upstream->url()));
    constexpr int Count = 200;
    for (int i = 0; i < Count; ++i) {
        Outcome outcome;
        sendChat(&outcome);
        if (QTest::currentTestFailed())
            return;
        QVERIFY2(outcome.status == 502 && outcome.code == QLatin1String("upstream_tls_error"),
                 qPrintable(QStringLiteral("request %1: %2").arg(i).arg(QString::fromUtf8(outcome.body))));
    }
    QCOMPARE(upstream->handshakes(), Count);
    QCOMPARE(m_proxy->records.size(), Count);

    keyrelay::ProxyConfig config = m_proxy->service.config();
    config.upstream = m_mock->url();
    QVERIFY(m_proxy->service.applyConfig(config));
    m_mock->setHandler([](const RecordedRequest &) { return MockResponse::json(200, TlsJsonAnswer); });
    Outcome outcome;
    sendChat(&outcome);
    if (QTest::currentTestFailed())
        return;
    QCOMPARE(outcome.status, 200);
    QCOMPARE(outcome.body, TlsJsonAnswer);
    QCOMPARE(m_mock->requestCount(), 1);
}

QTEST_GUILESS_MAIN(UpstreamFailuresTest)
#include "tst_it_upstreamfailures.moc"
