// The proxy on several threads: a ProxyServer with two worker threads (ProxyServer's Worker) serves
// connections on all three, and what the threads share stays one: requests in flight are counted across
// threads, every request record has its own id, the connection budget is one budget, and a shutdown
// reports drained once, after the workers' requests too.
#include "keypool.h"
#include "mockupstream.h"
#include "proxyharness.h"
#include "proxyserver.h"
#include "rawclient.h"
#include "secretredactor.h"

#include <QSignalSpy>
#include <QTcpSocket>
#include <QtTest>

#include <set>

using namespace it;

class ThreadsTest : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void init();
    void cleanup();
    void requestsInFlightCountedAcrossThreads();
    void manyClientsServedWithDistinctRecords();
    void connectionBudgetIsShared();
    void shutdownWaitsForEveryThread();

private:
    bool start(keyrelay::ProxyConfig config);

    std::unique_ptr<MockUpstream> m_mock;
    std::unique_ptr<keyrelay::KeyPool> m_keys;
    std::unique_ptr<keyrelay::SecretRedactor> m_redactor;
    std::unique_ptr<keyrelay::ProxyServer> m_server;
    QList<keyrelay::RequestRecord> m_records;
};

void ThreadsTest::init()
{
    m_mock = std::make_unique<MockUpstream>();
    QVERIFY(m_mock->listen());
    m_keys = std::make_unique<keyrelay::KeyPool>();
    m_keys->setKeys({ { QStringLiteral("sk-threads-test-key-0000000001"), QString(), true },
                      { QStringLiteral("sk-threads-test-key-0000000002"), QString(), true } });
    m_redactor = std::make_unique<keyrelay::SecretRedactor>(m_keys.get());
    m_server = std::make_unique<keyrelay::ProxyServer>(m_keys.get(), m_redactor.get(), nullptr, 2);
    m_records.clear();
    connect(m_server.get(), &keyrelay::ProxyServer::requestFinished, this,
            [this](const keyrelay::RequestRecord &record) { m_records.append(record); });
    QCOMPARE(m_server->servingThreads(), 3);
}

void ThreadsTest::cleanup()
{
    m_server.reset();
    m_redactor.reset();
    m_keys.reset();
    m_mock.reset();
}

bool ThreadsTest::start(keyrelay::ProxyConfig config)
{
    QString error;
    const bool ok = m_server->listen(config, &error);
    if (!ok)
        qWarning() << error;
    return ok;
}

void ThreadsTest::requestsInFlightCountedAcrossThreads()
{
    // Six held requests, two per thread: the count is the proxy's, not the listening thread's.
    m_mock->setHandler([](const RecordedRequest &) { return MockResponse::hold(); });
    QVERIFY(start(testConfig(m_mock->url())));
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int i = 0; i < 6; ++i) {
        clients.push_back(std::make_unique<RawClient>());
        clients.back()->send(m_server->port(), buildRequest("POST", "/v1/chat/completions", m_server->port(),
                                                            { { "Content-Type", "application/json" } },
                                                            R"({"model":"m","messages":[]})"));
    }
    QTRY_COMPARE_WITH_TIMEOUT(m_mock->requestCount(), 6, 10000);
    QCOMPARE(m_server->activeRequests(), 6);
    // And the health endpoint, whichever thread answers it, says the same.
    RawClient health;
    health.send(m_server->port(), buildRequest("GET", "/_keyrelay/health", m_server->port()));
    QVERIFY(health.waitFinished());
    QVERIFY2(health.body().contains("\"active_requests\":6"), health.body().constData());
    clients.clear(); // the clients hang up: every thread ends its exchanges
    QTRY_COMPARE_WITH_TIMEOUT(m_server->activeRequests(), 0, 10000);
}

void ThreadsTest::manyClientsServedWithDistinctRecords()
{
    m_mock->setHandler([](const RecordedRequest &request) {
        return MockResponse::fixed(200, request.body, { { "Content-Type", "application/json" } });
    });
    QVERIFY(start(testConfig(m_mock->url())));
    constexpr int Clients = 30;
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int i = 0; i < Clients; ++i) {
        clients.push_back(std::make_unique<RawClient>());
        clients.back()->send(m_server->port(),
                             buildRequest("POST", "/v1/embeddings", m_server->port(),
                                          { { "Content-Type", "application/json" } },
                                          QByteArray(R"({"model":"m","input":")") + QByteArray::number(i)
                                              + "\"}"));
    }
    for (int i = 0; i < Clients; ++i) {
        QVERIFY(clients[size_t(i)]->waitFinished(10000));
        QCOMPARE(clients[size_t(i)]->status(), 200);
        QCOMPARE(clients[size_t(i)]->body(),
                 QByteArray(R"({"model":"m","input":")") + QByteArray::number(i) + "\"}");
    }
    QTRY_COMPARE_WITH_TIMEOUT(m_records.size(), qsizetype(Clients), 10000);
    std::set<quint64> ids;
    for (const keyrelay::RequestRecord &record : std::as_const(m_records))
        ids.insert(record.id);
    QCOMPARE(int(ids.size()), Clients);
}

void ThreadsTest::connectionBudgetIsShared()
{
    // Two connections allowed for the whole proxy: the third client gets 503 whichever thread it lands on.
    keyrelay::ProxyConfig config = testConfig(m_mock->url());
    config.maxConnections = 2;
    QVERIFY(start(config));
    std::vector<std::unique_ptr<QTcpSocket>> held;
    for (int i = 0; i < 2; ++i) {
        held.push_back(std::make_unique<QTcpSocket>());
        held.back()->connectToHost(QHostAddress::LocalHost, m_server->port());
        QVERIFY(held.back()->waitForConnected(5000));
        held.back()->write("GET /v1/mod"); // an unfinished head keeps the connection busy
        QVERIFY(held.back()->waitForBytesWritten(5000));
    }
    QTRY_COMPARE(m_server->openConnections(), 2); // each adopted by its thread
    for (int i = 0; i < 3; ++i) { // refused before any thread is chosen
        RawClient refused;
        refused.send(m_server->port(), buildRequest("GET", "/v1/models", m_server->port()));
        QVERIFY(refused.waitFinished());
        QCOMPARE(refused.status(), 503);
    }
}

void ThreadsTest::shutdownWaitsForEveryThread()
{
    // A request in flight on each thread: drained() comes once, after the last of them ended.
    m_mock->setHandler([](const RecordedRequest &) {
        return MockResponse::sse({ { 0, "data: {\"n\":1}\n\n" }, { 600, "data: [DONE]\n\n" } });
    });
    QVERIFY(start(testConfig(m_mock->url())));
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int i = 0; i < 3; ++i) {
        clients.push_back(std::make_unique<RawClient>());
        clients.back()->send(m_server->port(), buildRequest("POST", "/v1/chat/completions", m_server->port(),
                                                            { { "Content-Type", "application/json" } },
                                                            R"({"model":"m","stream":true,"messages":[]})"));
    }
    QTRY_COMPARE_WITH_TIMEOUT(m_server->activeRequests(), 3, 10000);
    QSignalSpy drained(m_server.get(), &keyrelay::ProxyServer::drained);
    m_server->shutdown(5000);
    QVERIFY(drained.wait(10000));
    QCOMPARE(m_server->activeRequests(), 0);
    for (const auto &client : clients) {
        QVERIFY(client->waitFinished(5000));
        QCOMPARE(client->status(), 200);
        QVERIFY(client->body().contains("[DONE]")); // the streams in flight were finished, not cut
    }
    QTest::qWait(100);
    QCOMPARE(drained.size(), 1);
}

QTEST_GUILESS_MAIN(ThreadsTest)
#include "tst_it_threads.moc"
