// The local endpoint: listens on loopback, answers CORS preflights, hands requests to ProxyExchange.
#pragma once

#include "descriptorlimit.h"
#include "httpconnection.h"
#include "modelcatalog.h"
#include "proxyconfig.h"
#include "requestrecord.h"

#include <QElapsedTimer>
#include <QHash>
#include <QList>
#include <QObject>
#include <QPointer>
#include <QSet>

#include <atomic>
#include <functional>
#include <memory>

class QTcpServer;
class QThread;

namespace keyrelay {

class AccessPolicy;
class KeyPool;
class KeyHealthMonitor;
class KeyTester;
class SecretRedactor;
class UsageStore;
class ProxyExchange;
class UpstreamRouter;
struct UpstreamAccess;
struct ProviderDirectory;
class ModelListing;

/// Lives in one thread (ProxyService's); all its methods must be called from that thread.
class ProxyServer : public QObject
{
    Q_OBJECT
public:
    /// @p redactor (not owned, thread-safe) cleans every record; the server sets its extra secrets.
    /// @p workerThreads: further threads that serve connections beside this one (each a ProxyServer
    /// without listeners, see Worker); -1 = one fewer than the machine's cores, at most 3.
    ProxyServer(KeyPool *keys, SecretRedactor *redactor, QObject *parent = nullptr, int workerThreads = -1);
    ~ProxyServer() override;

    /// Starts listening, or moves to a new address. On failure returns false and a message fit for the user
    /// (e.g. port in use); listeners that were open then stay open, and the settings stay as they were.
    bool listen(const ProxyConfig &config, QString *error);
    /// Stops accepting connections; requests in flight go on.
    void close();
    bool isListening() const;
    quint16 port() const;

    /// Replaces the settings for new requests (listen address changes need close() + listen()).
    void setConfig(const ProxyConfig &config);
    ProxyConfig config() const { return *m_config; }
    /// Where finished requests are booked and the status endpoint reads token totals (thread-safe; may
    /// be null).
    void setUsageStore(UsageStore *usage);
    /// The key pools of providers with keys of their own (id -> pool, not owned; thread-safe pools).
    /// The pool given to the constructor serves the provider "default", else the first provider without
    /// a pool here; the rest get no key (the client's passes through). Takes effect with setConfig().
    void setProviderPools(const QHash<QString, KeyPool *> &pools);

    /// Requests in flight, in every thread.
    int activeRequests() const { return m_shared->activeRequests.load(); }
    /// Client connections open, in every thread (what proxy/maxConnections bounds).
    int openConnections() const { return m_shared->connections.load(); }
    /// Threads that serve connections, this one included.
    int servingThreads() const { return 1 + int(m_workers.size()); }
    KeyHealthMonitor *healthMonitor() const { return m_healthMonitor; }
    /// Closes the listeners, lets requests in flight finish for @p graceMs, then cuts them off.
    /// Emits drained() when no request is left (at once if none is in flight).
    void shutdown(int graceMs);

Q_SIGNALS:
    /// A request ended. Emitted in the thread that served it (this server's or a worker's): connect with a
    /// context object, or directly to thread-safe code.
    void requestFinished(const keyrelay::RequestRecord &record);
    void drained();

private:
    /// What the threads of one proxy share (every field is atomic).
    struct Shared
    {
        std::atomic<quint64> nextId { 1 };
        std::atomic<int> activeRequests { 0 };
        std::atomic<int> connections { 0 }; ///< client connections open, against the budget
        std::shared_ptr<ModelListing> modelListing = std::make_shared<ModelListing>(); ///< every thread's
    };
    /// A ProxyServer without listeners in a thread of its own: this one hands it accepted sockets.
    struct Worker
    {
        QThread *thread = nullptr;
        ProxyServer *server = nullptr;
    };
    ProxyServer(KeyPool *keys, SecretRedactor *redactor, std::shared_ptr<Shared> shared);
    /// Serves the connection of an accepted socket descriptor in this thread (already counted).
    void adoptSocket(qintptr descriptor);
    /// A connection accepted by a listener: served here or handed to a worker, in turn.
    void onIncoming(qintptr descriptor);
    /// Runs @p call in every worker's thread and waits for it.
    void forEachWorker(const std::function<void(ProxyServer *)> &call);
    void onWorkerDrained();

    /// Opens a listener per address of @p config into @p listeners (none on failure, with @p error).
    bool bindListeners(const ProxyConfig &config, QList<QTcpServer *> *listeners, QString *error);
    /// Makes @p listeners the server's, accepting connections.
    void adoptListeners(const QList<QTcpServer *> &listeners);
    /// Over the connection budget: a 503 on the accepted @p descriptor, then close it (see refuseConnection;
    /// once MaxLingeringRefusals linger, at once).
    void refuseDescriptor(qintptr descriptor);
    /// A 503 on @p socket, the end of writing, and what the client still sends dropped until it closes (or
    /// RefusalLingerMs pass).
    void refuseConnection(QTcpSocket *socket);
    /// The 503 a refused connection gets (and, every 10 s at most, the warning in the log).
    QByteArray refusalAnswer();
    /// GET /_keyrelay/status: every key's state (never the key) and the token totals.
    QByteArray statusJson() const;
    /// At the cap: closes one idle kept-alive connection to make room. False if none is idle.
    bool closeAnIdleConnection();
    void onRequest(HttpConnection *connection, const HttpRequest &request);
    void onExchangeFinished(const RequestRecord &record);
    /// Answers a request itself (refusals, health) with an OpenAI-style error body and logs it.
    void refuse(HttpConnection *connection, const HttpRequest &request, int status, const QString &message,
                const QString &type, const QString &code, const HeaderList &extraHeaders = {});
    void recordLocal(const HttpRequest &request, int status, qint64 bytes, const QString &error,
                     bool originBlocked = false);
    /// The one exit of request records: every text in them passes the redactor here.
    void emitRecord(RequestRecord record);
    void checkDrained();

    KeyPool *m_keys;
    KeyPool *m_noKeys = nullptr; ///< the pool of providers without keys (always empty; the first thread's)
    QHash<QString, KeyPool *> m_providerPools;
    std::shared_ptr<const ProviderDirectory> m_directory;
    /// The re-checks of the providers' own pools (the first thread's), by pool.
    struct PoolChecks
    {
        KeyTester *tester = nullptr;
        KeyHealthMonitor *monitor = nullptr;
    };
    QHash<KeyPool *, PoolChecks> m_poolChecks;
    /// The first thread's: fetches the model lists of providers that have no model patterns of their own
    /// (their list is what routes to them), soon after a start, a settings change or a change of their keys.
    void scheduleModelRefresh();
    void refreshModelLists();
    bool m_modelRefreshScheduled = false;
    /// Builds m_directory for @p config and points every pool's re-checks at its provider.
    void buildDirectory(const ProxyConfig &config);
    UpstreamRouter *m_upstream; ///< every proxied upstream request of this thread (libcurl multi)
    std::shared_ptr<const UpstreamAccess> m_upstreamAccess;
    KeyTester *m_keyTester; ///< the background re-checks' GET of the model list
    KeyHealthMonitor *m_healthMonitor;
    std::shared_ptr<const ProxyConfig> m_config;
    std::shared_ptr<const AccessPolicy> m_policy;
    SecretRedactor *m_redactor;
    std::atomic<UsageStore *> m_usage { nullptr };
    QList<QTcpServer *> m_listeners;
    QSet<ProxyExchange *> m_exchanges;
    QSet<HttpConnection *> m_connections;
    QSet<HttpConnection *> m_yielding; ///< idle connections closing to make room for new clients
    std::shared_ptr<Shared> m_shared;
    QList<Worker> m_workers;
    /// Connections handed to this server (by the accepting thread) and not closed yet.
    std::atomic<int> m_assigned { 0 };
    int m_workersDraining = 0; ///< shutdown: workers that have not reported drained() yet
    DescriptorBudget m_budget;
    QElapsedTimer m_lastCapWarning;
    int m_lingeringRefusals = 0; ///< refused connections still open to close politely (see refuseConnection)
    QElapsedTimer m_lastAcceptWarning;
    bool m_shuttingDown = false;
    bool m_trimScheduled = false;
    bool m_closingConnections = false; ///< shutdown: waiting for the connections to flush and close
};

} // namespace keyrelay
