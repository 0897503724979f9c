// Streaming: SSE events pass through as they happen, long streams outlive the idle timeout while they
// keep moving, a client that leaves mid-stream closes the upstream connection, and 256 concurrent
// streams to one upstream host do not queue.
#include "mockupstream.h"
#include "proxyharness.h"
#include "rawclient.h"

#include <QElapsedTimer>
#include <QtTest>

#include <sys/resource.h>

using namespace it;

namespace {
QByteArray sseEvent(const QByteArray &data)
{
    return "data: " + data + "\n\n";
}

const QByteArray ChatBody
    = R"({"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]})";
} // namespace

class StreamingTest : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void init();
    void cleanup();

    void eventsArriveWhenSent();
    void longStreamOutlivesIdleTimeout();
    void idleStreamIsCutAfterIdleTimeout();
    void clientLeavesMidStream();
    void clientLeavesBeforeResponse();
    void manyConcurrentStreams();
    void shutdownLetsStreamsFinish();
    void shutdownCutsStreamsAfterGrace();

private:
    bool startProxy(int idleTimeoutSec = 10);
    QByteArray chatRequest() const
    {
        return buildRequest("POST", "/v1/chat/completions", m_proxy->port(),
                            { { "Content-Type", "application/json" }, { "Accept", "text/event-stream" } },
                            ChatBody);
    }

    std::unique_ptr<MockUpstream> m_mock;
    std::unique_ptr<ProxyHarness> m_proxy;
};

void StreamingTest::initTestCase()
{
    // 256 streams hold about 4 descriptors each (client, proxy in, proxy out, mock).
    rlimit limit {};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < 4096) {
        limit.rlim_cur = qMin<rlim_t>(4096, limit.rlim_max);
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

void StreamingTest::init()
{
    m_mock = std::make_unique<MockUpstream>();
    QVERIFY(m_mock->listen());
    m_proxy = std::make_unique<ProxyHarness>(QStringList { QStringLiteral("sk-stream-key-000000000001") });
}

void StreamingTest::cleanup()
{
    m_proxy.reset();
    m_mock.reset();
}

bool StreamingTest::startProxy(int idleTimeoutSec)
{
    keyrelay::ProxyConfig config = testConfig(m_mock->url());
    config.idleTimeoutSec = idleTimeoutSec;
    config.connectTimeoutSec = qMin(5, idleTimeoutSec);
    QString error;
    const bool ok = m_proxy->start(config, &error);
    if (!ok)
        qWarning() << error;
    return ok;
}

void StreamingTest::eventsArriveWhenSent()
{
    QVERIFY(startProxy());
    m_mock->setHandler([](const RecordedRequest &) {
        return MockResponse::sse(
            { { 0, sseEvent(R"({"n":1})") }, { 2000, sseEvent(R"({"n":2})") + sseEvent("[DONE]") } });
    });
    RawClient client;
    client.send(m_proxy->port(), chatRequest());
    QVERIFY(client.waitHead(5000));
    QCOMPARE(client.status(), 200);
    QCOMPARE(client.header("Content-Type"), QByteArray("text/event-stream"));
    // Event 1 shows up long before event 2 is even sent.
    QTRY_VERIFY_WITH_TIMEOUT(client.body().contains(R"({"n":1})"), 1500);
    QVERIFY(!client.body().contains(R"({"n":2})"));
    QVERIFY(client.waitFinished(10000));
    const qint64 first = client.msUntilBodyContains(R"({"n":1})");
    const qint64 second = client.msUntilBodyContains(R"({"n":2})");
    QVERIFY2(first >= 0 && first < 1000, qPrintable(QString::number(first)));
    QVERIFY2(second - first > 1500, qPrintable(QStringLiteral("%1 -> %2").arg(first).arg(second)));
    QCOMPARE(client.body(), sseEvent(R"({"n":1})") + sseEvent(R"({"n":2})") + sseEvent("[DONE]"));
}

void StreamingTest::longStreamOutlivesIdleTimeout()
{
    // idle timeout 2 s, a 4 s stream with an event every 0.5 s: never idle, so it must complete.
    QVERIFY(startProxy(2));
    QList<QPair<int, QByteArray>> events;
    QByteArray expected;
    for (int i = 0; i <= 8; ++i) {
        const QByteArray data = sseEvent("tick " + QByteArray::number(i));
        events.append({ i * 500, data });
        expected += data;
    }
    m_mock->setHandler([&](const RecordedRequest &) { return MockResponse::sse(events); });
    QSignalSpy finished(&m_proxy->service, &keyrelay::ProxyService::requestFinished);
    RawClient client;
    client.send(m_proxy->port(), chatRequest());
    QVERIFY(client.waitFinished(15000));
    QCOMPARE(client.status(), 200);
    QCOMPARE(client.body(), expected);
    QVERIFY(client.msUntilFinished() >= 3500);
    QTRY_COMPARE(finished.size(), 1);
    const auto record = finished.first().first().value<keyrelay::RequestRecord>();
    QVERIFY2(record.error.isEmpty(), qPrintable(record.error));
    QVERIFY(record.streamed);
    QCOMPARE(record.responseBytes, qint64(expected.size()));
}

void StreamingTest::idleStreamIsCutAfterIdleTimeout()
{
    // The counterpart: a stream that goes silent longer than the idle timeout is cut off, and the
    // client sees an incomplete response (no terminating chunk), not a clean end.
    QVERIFY(startProxy(1));
    m_mock->setHandler([](const RecordedRequest &) {
        return MockResponse::sse({ { 0, sseEvent("only one") } }, false);
    });
    RawClient client;
    client.send(m_proxy->port(), chatRequest());
    QVERIFY(client.waitHead(5000));
    QTRY_VERIFY_WITH_TIMEOUT(client.disconnected(), 6000);
    QVERIFY(client.truncated());
    QCOMPARE(client.body(), sseEvent("only one"));
    QTRY_VERIFY_WITH_TIMEOUT(!m_mock->isConnectionOpen(m_mock->lastRequest().connectionId), 5000);
}

void StreamingTest::clientLeavesMidStream()
{
    QVERIFY(startProxy());
    // Event 1 now, then nothing for a long time: the stream would hold the upstream open.
    m_mock->setHandler([](const RecordedRequest &) {
        return MockResponse::sse({ { 0, sseEvent("first") }, { 60000, sseEvent("never") } }, false);
    });
    QSignalSpy finished(&m_proxy->service, &keyrelay::ProxyService::requestFinished);
    QSignalSpy upstreamClosed(m_mock.get(), &MockUpstream::clientDisconnected);
    {
        RawClient client;
        client.send(m_proxy->port(), chatRequest());
        QTRY_VERIFY_WITH_TIMEOUT(client.body().contains("first"), 5000);
        QCOMPARE(m_mock->requestCount(), 1);
        QVERIFY(m_mock->isConnectionOpen(m_mock->lastRequest().connectionId));
        client.abort();
    }
    const int streamConnection = m_mock->lastRequest().connectionId;
    // The proxy notices and closes its upstream connection.
    QTRY_VERIFY_WITH_TIMEOUT(m_mock->closedConnections().contains(streamConnection), 5000);
    QVERIFY(!upstreamClosed.isEmpty());
    QTRY_COMPARE(finished.size(), 1);
    QVERIFY(!finished.first().first().value<keyrelay::RequestRecord>().error.isEmpty());
    QTRY_COMPARE(m_proxy->service.activeRequests(), 0);

    // The same proxy serves the next request.
    m_mock->setHandler([](const RecordedRequest &) {
        return MockResponse::sse({ { 0, sseEvent("next") + sseEvent("[DONE]") } });
    });
    RawClient next;
    next.send(m_proxy->port(), chatRequest());
    QVERIFY(next.waitFinished(5000));
    QCOMPARE(next.status(), 200);
    QCOMPARE(next.body(), sseEvent("next") + sseEvent("[DONE]"));
    QCOMPARE(m_mock->requestCount(), 2);
}

void StreamingTest::clientLeavesBeforeResponse()
{
    QVERIFY(startProxy());
    m_mock->setHandler([](const RecordedRequest &) { return MockResponse::hold(); });
    QSignalSpy finished(&m_proxy->service, &keyrelay::ProxyService::requestFinished);
    {
        RawClient client;
        client.send(m_proxy->port(), chatRequest());
        QTRY_COMPARE(m_mock->requestCount(), 1);
        client.abort();
    }
    const int connection = m_mock->lastRequest().connectionId;
    QTRY_VERIFY_WITH_TIMEOUT(m_mock->closedConnections().contains(connection), 5000);
    QTRY_COMPARE(finished.size(), 1);
    QCOMPARE(finished.first().first().value<keyrelay::RequestRecord>().status, 0);
    QTRY_COMPARE(m_proxy->service.activeRequests(), 0);

    m_mock->setHandler([](const RecordedRequest &) { return MockResponse::fixed(200, "fine"); });
    RawClient next;
    next.send(m_proxy->port(), chatRequest());
    QVERIFY(next.waitFinished(5000));
    QCOMPARE(next.body(), QByteArray("fine"));
}

void StreamingTest::manyConcurrentStreams()
{
    constexpr int Streams = 256;
    QVERIFY(startProxy());
    m_mock->setHandler([](const RecordedRequest &request) {
        const QByteArray tag = request.header("X-Stream");
        return MockResponse::sse(
            { { 0, sseEvent("start " + tag) }, { 1000, sseEvent("end " + tag) + sseEvent("[DONE]") } });
    });

    std::vector<std::unique_ptr<RawClient>> clients;
    clients.reserve(Streams);
    QElapsedTimer clock;
    clock.start();
    for (int i = 0; i < Streams; ++i) {
        auto client = std::make_unique<RawClient>();
        client->send(
            m_proxy->port(),
            buildRequest("POST", "/v1/chat/completions", m_proxy->port(),
                         { { "Content-Type", "application/json" }, { "X-Stream", QByteArray::number(i) } },
                         ChatBody));
        clients.push_back(std::move(client));
    }
    const auto doneCount = [&] {
        int done = 0;
        for (const auto &client : clients)
            done += client->finished() || client->disconnected() ? 1 : 0;
        return done;
    };
    // Queued 6 at a time, 256 one-second streams would take over 40 s; bounded wait well below that.
    QTRY_COMPARE_WITH_TIMEOUT(doneCount(), Streams, 20000);
    const qint64 elapsed = clock.elapsed();
    for (int i = 0; i < Streams; ++i) {
        const RawClient &client = *clients.at(size_t(i));
        QVERIFY2(client.finished(), qPrintable(QStringLiteral("stream %1 did not complete").arg(i)));
        QCOMPARE(client.status(), 200);
        const QByteArray tag = QByteArray::number(i);
        QCOMPARE(client.body(), sseEvent("start " + tag) + sseEvent("end " + tag) + sseEvent("[DONE]"));
    }
    QCOMPARE(m_mock->requestCount(), Streams);
    qInfo() << Streams << "streams in" << elapsed << "ms; at most" << m_mock->peakActiveResponses()
            << "upstream responses at once";
    QVERIFY2(elapsed < 10000, qPrintable(QString::number(elapsed)));
    // Far more than 6 streams were open upstream at the same time.
    QVERIFY2(m_mock->peakActiveResponses() > 100, qPrintable(QString::number(m_mock->peakActiveResponses())));
}

void StreamingTest::shutdownLetsStreamsFinish()
{
    QVERIFY(startProxy());
    m_mock->setHandler([](const RecordedRequest &) {
        return MockResponse::sse({ { 0, sseEvent("one") }, { 700, sseEvent("two") + sseEvent("[DONE]") } });
    });
    RawClient streaming;
    streaming.send(m_proxy->port(), chatRequest());
    RawClient idle; // an idle keep-alive connection must not hold up the shutdown
    idle.send(m_proxy->port(), buildRequest("GET", "/_keyrelay/health", m_proxy->port()));
    QVERIFY(idle.waitFinished());
    QTRY_VERIFY_WITH_TIMEOUT(streaming.body().contains("one"), 5000);

    QSignalSpy complete(&m_proxy->service, &keyrelay::ProxyService::shutdownComplete);
    m_proxy->service.shutdown(5000);
    QTRY_COMPARE_WITH_TIMEOUT(complete.size(), 1, 5000);
    // Every byte of the stream reached the client before the proxy reported it was done.
    QVERIFY(streaming.waitFinished(2000));
    QCOMPARE(streaming.body(), sseEvent("one") + sseEvent("two") + sseEvent("[DONE]"));
    QTRY_VERIFY(idle.disconnected());
    QCOMPARE(m_proxy->service.state(), keyrelay::ProxyService::State::Stopped);

    // New connections are refused after the shutdown.
    RawClient late;
    late.send(m_proxy->port() ? m_proxy->port() : 1, buildRequest("GET", "/v1/models", 1));
    QTRY_VERIFY(late.disconnected());
    QVERIFY(!late.finished());
}

void StreamingTest::shutdownCutsStreamsAfterGrace()
{
    QVERIFY(startProxy());
    m_mock->setHandler([](const RecordedRequest &) {
        return MockResponse::sse({ { 0, sseEvent("one") } }, false);
    });
    RawClient streaming;
    streaming.send(m_proxy->port(), chatRequest());
    QTRY_VERIFY_WITH_TIMEOUT(streaming.body().contains("one"), 5000);
    QSignalSpy complete(&m_proxy->service, &keyrelay::ProxyService::shutdownComplete);
    QElapsedTimer clock;
    clock.start();
    m_proxy->service.shutdown(500);
    QTRY_COMPARE_WITH_TIMEOUT(complete.size(), 1, 5000);
    QVERIFY(clock.elapsed() >= 450);
    QTRY_VERIFY(streaming.disconnected());
    QVERIFY(streaming.truncated()); // cut off, not a clean end
    QTRY_VERIFY_WITH_TIMEOUT(!m_mock->isConnectionOpen(m_mock->lastRequest().connectionId), 5000);
}

QTEST_GUILESS_MAIN(StreamingTest)
#include "tst_it_streaming.moc"
