#include "proxyserver.h"

#include "accesspolicy.h"
#include "descriptorlimit.h"
#include "keyhealthmonitor.h"
#include "keypool.h"
#include "headerpolicy.h"
#include "keytester.h"
#include "logging.h"
#include "modelcatalog.h"
#include "openaierror.h"
#include "proxyexchange.h"
#include "secretredactor.h"
#include "upstreamrouter.h"
#include "usagestore.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSslConfiguration>
#include <QTcpServer>
#include <QThread>
#include <QTimer>

#include <malloc.h>
#include <sys/socket.h>
#include <unistd.h>

namespace keyrelay {

namespace {
const QByteArray AllowedMethods = QByteArrayLiteral("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
constexpr int ConnectionFlushTimeoutMs = 3000; ///< shutdown: how long clients get to take the last bytes
constexpr int AcceptRetryMs = 200;
/// Refused connections kept open for a polite close at once (within DescriptorLimit's refusal margin),
/// and for how long at most.
constexpr int MaxLingeringRefusals = 8;
constexpr int RefusalLingerMs = 1000; ///< after accept() failed (descriptors exhausted)
constexpr int TrimDelayMs = 1000; ///< after the last request ends, free memory goes back to the system

/// CAs that the application added to Qt's default TLS configuration (an embedding program, the tests):
/// libcurl verifies with the system's store, and these in addition.
QByteArray extraTrustedCertificatesPem()
{
    const QList<QSslCertificate> configured = QSslConfiguration::defaultConfiguration().caCertificates();
    if (configured.isEmpty())
        return {}; // Qt loads the system's CAs on demand: nothing was added
    QList<QSslCertificate> system;
    if (configured.size() > 8) // Qt may have copied the system's list into the default configuration
        system = QSslConfiguration::systemCaCertificates();
    QByteArray pem;
    for (const QSslCertificate &certificate : configured) {
        if (!system.contains(certificate))
            pem += certificate.toPem();
    }
    return pem;
}

/// A listener that hands every accepted descriptor to a callback (no QTcpSocket made in its thread), so
/// that the connection can be served by another thread.
class Listener : public QTcpServer
{
public:
    Listener(std::function<void(qintptr)> onIncoming, QObject *parent)
        : QTcpServer(parent), m_onIncoming(std::move(onIncoming))
    {
    }

protected:
    void incomingConnection(qintptr descriptor) override { m_onIncoming(descriptor); }

private:
    std::function<void(qintptr)> m_onIncoming;
};

int defaultWorkerThreads()
{
    return qBound(0, QThread::idealThreadCount() - 1, 3);
}

} // namespace

ProxyServer::ProxyServer(KeyPool *keys, SecretRedactor *redactor, QObject *parent, int workerThreads)
    : QObject(parent), m_keys(keys), m_upstream(new UpstreamRouter(this)),
      m_keyTester(new KeyTester(this)), m_healthMonitor(new KeyHealthMonitor(keys, m_keyTester, this)),
      m_config(std::make_shared<const ProxyConfig>()),
      m_policy(std::make_shared<const AccessPolicy>(*m_config)), m_redactor(redactor),
      m_shared(std::make_shared<Shared>())
{
    m_keyTester->setConfig(*m_config);
    m_noKeys = new KeyPool(this);
    const int workers = workerThreads < 0 ? defaultWorkerThreads() : workerThreads;
    for (int i = 0; i < workers; ++i) {
        Worker worker;
        worker.thread = new QThread(this);
        worker.thread->setObjectName(QStringLiteral("KeyRelay proxy %1").arg(i + 2));
        worker.server = new ProxyServer(keys, redactor, m_shared);
        worker.server->m_noKeys = m_noKeys;
        worker.server->m_upstream->setThreadsSharingTheCap(1 + workers); // before its thread runs
        worker.server->moveToThread(worker.thread);
        connect(worker.thread, &QThread::finished, worker.server, &QObject::deleteLater);
        // Records come through this server's signal, emitted in the worker's thread: receivers in other
        // threads get them queued as ever, and ProxyService batches them without waking this thread once
        // per request. The end of a shutdown comes in this server's thread.
        connect(worker.server, &ProxyServer::requestFinished, this, &ProxyServer::requestFinished,
                Qt::DirectConnection);
        connect(worker.server, &ProxyServer::drained, this, &ProxyServer::onWorkerDrained);
        worker.thread->start();
        m_workers.append(worker);
    }
    m_upstream->setThreadsSharingTheCap(servingThreads());
}

ProxyServer::ProxyServer(KeyPool *keys, SecretRedactor *redactor, std::shared_ptr<Shared> shared)
    : QObject(nullptr), m_keys(keys), m_upstream(new UpstreamRouter(this)), m_keyTester(nullptr),
      m_healthMonitor(nullptr), m_config(std::make_shared<const ProxyConfig>()),
      m_policy(std::make_shared<const AccessPolicy>(*m_config)), m_redactor(redactor),
      m_shared(std::move(shared))
{
}

void ProxyServer::forEachWorker(const std::function<void(ProxyServer *)> &call)
{
    for (const Worker &worker : std::as_const(m_workers)) {
        ProxyServer *server = worker.server;
        QMetaObject::invokeMethod(
            server, [server, &call] { call(server); }, Qt::BlockingQueuedConnection);
    }
}

void ProxyServer::setUsageStore(UsageStore *usage)
{
    m_usage = usage;
    for (const Worker &worker : std::as_const(m_workers))
        worker.server->m_usage = usage; // atomic
}

ProxyServer::~ProxyServer()
{
    // Workers first: each deletes its server in its own thread when the thread ends.
    for (const Worker &worker : std::as_const(m_workers)) {
        worker.server->disconnect(this);
        worker.thread->quit();
        worker.thread->wait();
    }
    // Exchanges refer to connections and the pool: delete them first, quietly.
    const auto exchanges = m_exchanges;
    for (ProxyExchange *exchange : exchanges) {
        exchange->disconnect(this);
        delete exchange;
    }
    const auto connections = m_connections;
    for (HttpConnection *connection : connections) {
        connection->disconnect(this);
        delete connection;
    }
}

void ProxyServer::setProviderPools(const QHash<QString, KeyPool *> &pools)
{
    m_providerPools = pools;
    QList<const KeyPool *> more;
    for (KeyPool *pool : pools)
        more.append(pool);
    if (m_keyTester) // the first thread's: the redactor is shared
        m_redactor->setMorePools(more);
    forEachWorker([pools](ProxyServer *worker) { worker->setProviderPools(pools); });
}

void ProxyServer::buildDirectory(const ProxyConfig &config)
{
    auto directory = std::make_shared<ProviderDirectory>();
    const QList<ProviderConfig> providers = config.effectiveProviders();
    directory->router = ProviderRouter(providers, config.providers.isEmpty());
    directory->listing = m_shared->modelListing;
    // The keys of the tray app or --keys-file: provider "default", else the first without keys of its own.
    QString mainOwner;
    for (const ProviderConfig &provider : providers) {
        if (provider.id == QLatin1String(ProviderConfig::DefaultId) && !m_providerPools.contains(provider.id))
            mainOwner = provider.id;
    }
    for (const ProviderConfig &provider : providers) {
        if (mainOwner.isEmpty() && !m_providerPools.contains(provider.id))
            mainOwner = provider.id;
    }
    const HealthPolicy health { config.recheckInvalidSec, config.recheckExhaustedSec, config.maxAttempts,
                                config.maxConcurrentPerKey };
    for (const ProviderConfig &provider : providers) {
        ProviderEndpoint endpoint;
        endpoint.config = provider;
        endpoint.keys = m_providerPools.value(provider.id, provider.id == mainOwner ? m_keys : m_noKeys);
        endpoint.proxy = m_upstreamAccess->proxy; // [proxy] upstreamProxy, with its stored password
        if (!provider.upstreamProxy.isEmpty()) {
            QNetworkProxy own(QNetworkProxy::NoProxy);
            bool useSystem = false;
            QString error;
            if (!ProxyConfig::parseUpstreamProxy(provider.upstreamProxy, &own, &useSystem, &error))
                own = QNetworkProxy(QNetworkProxy::NoProxy);
            if (useSystem)
                endpoint.proxy.reset();
            else
                endpoint.proxy = own;
        }
        endpoint.keys->setPolicy(health);
        directory->endpoints.append(endpoint);
    }
    m_directory = std::move(directory);
    if (!m_keyTester)
        return;
    // Re-checks: each pool against its own provider's model list, with its kind of key header.
    QSet<KeyPool *> used;
    for (const ProviderEndpoint &endpoint : m_directory->endpoints) {
        if (endpoint.keys == m_noKeys || used.contains(endpoint.keys))
            continue;
        used.insert(endpoint.keys);
        ProxyConfig checkConfig = config;
        checkConfig.upstream = endpoint.config.baseUrl;
        if (!endpoint.config.upstreamProxy.isEmpty())
            checkConfig.upstreamProxy = endpoint.config.upstreamProxy;
        KeyTester *tester = m_keyTester;
        KeyHealthMonitor *monitor = m_healthMonitor;
        if (endpoint.keys != m_keys) {
            PoolChecks &checks = m_poolChecks[endpoint.keys];
            if (!checks.tester) {
                checks.tester = new KeyTester(this);
                checks.monitor = new KeyHealthMonitor(endpoint.keys, checks.tester, this);
            }
            tester = checks.tester;
            monitor = checks.monitor;
        }
        if (!endpoint.config.models.isEmpty() || config.providers.isEmpty())
            disconnect(endpoint.keys, &KeyPool::keysChanged, this, &ProxyServer::scheduleModelRefresh);
        else
            connect(endpoint.keys, &KeyPool::keysChanged, this, &ProxyServer::scheduleModelRefresh,
                    Qt::UniqueConnection);
        tester->setConfig(checkConfig);
        tester->setProviderKind(endpoint.config.kind);
        tester->setExtraCaCertificates(m_upstreamAccess->extraCaCertificatesPem);
        monitor->reschedule();
    }
    // The re-checks of pools no provider uses any more (a provider removed) end with them.
    for (auto it = m_poolChecks.begin(); it != m_poolChecks.end();) {
        if (used.contains(it.key())) {
            ++it;
            continue;
        }
        disconnect(it.key(), &KeyPool::keysChanged, this, &ProxyServer::scheduleModelRefresh);
        it->monitor->deleteLater();
        it->tester->deleteLater();
        it = m_poolChecks.erase(it);
    }
}

void ProxyServer::scheduleModelRefresh()
{
    if (m_modelRefreshScheduled)
        return;
    m_modelRefreshScheduled = true;
    // Once for a burst of changes (the Keys page saves key by key; a start sets every pool).
    QTimer::singleShot(1000, this, [this] {
        m_modelRefreshScheduled = false;
        refreshModelLists();
    });
}

void ProxyServer::refreshModelLists()
{
    if (!m_directory || m_config->providers.isEmpty() || m_shuttingDown)
        return;
    QStringList ids;
    for (const ProviderEndpoint &endpoint : m_directory->endpoints) {
        if (endpoint.config.enabled && endpoint.config.models.isEmpty() && !endpoint.keys->isEmpty())
            ids.append(endpoint.config.id);
    }
    if (ids.isEmpty())
        return;
    auto *refresh = new ModelListRequest(nullptr, {}, m_directory, m_upstream,
                                         m_upstreamAccess->extraCaCertificatesPem, m_config->connectTimeoutSec,
                                         QString(), m_redactor, this);
    refresh->setOnly(ids);
    refresh->start();
}

void ProxyServer::setConfig(const ProxyConfig &config)
{
    m_config = std::make_shared<const ProxyConfig>(config);
    m_policy = std::make_shared<const AccessPolicy>(config);
    m_keys->setPolicy({ config.recheckInvalidSec, config.recheckExhaustedSec, config.maxAttempts,
                        config.maxConcurrentPerKey });
    QNetworkProxy proxy(QNetworkProxy::NoProxy);
    bool useSystem = false;
    QString error;
    if (!ProxyConfig::parseUpstreamProxy(config.upstreamProxy, &proxy, &useSystem, &error))
        proxy = QNetworkProxy(QNetworkProxy::NoProxy);
    auto access = std::make_shared<UpstreamAccess>();
    access->client = m_upstream;
    if (useSystem)
        access->proxy.reset(); // asked per request: the desktop's settings may differ by host
    else
        access->proxy = proxy;
    access->extraCaCertificatesPem = extraTrustedCertificatesPem();
    m_upstreamAccess = std::move(access);
    m_redactor->setExtraSecrets({ config.clientToken, proxy.password() });
    buildDirectory(config); // and, in the first thread, the key checks (once, not once per thread)
    if (m_keyTester && !config.providers.isEmpty())
        scheduleModelRefresh();
    forEachWorker([config](ProxyServer *worker) { worker->setConfig(config); });
}

bool ProxyServer::listen(const ProxyConfig &config, QString *error)
{
    const QStringList problems = config.validate();
    if (!problems.isEmpty()) {
        *error = problems.join(QStringLiteral("; "));
        return false;
    }
    // A new port is bound before the old listeners close, so that a port in use leaves the proxy serving
    // where it was. The same port cannot be bound twice: then the old listeners go first, and come back if
    // the new address cannot be had.
    const quint16 oldPort = port();
    const bool samePort = !m_listeners.isEmpty() && config.listenPort != 0 && config.listenPort == oldPort;
    const ProxyConfig oldConfig = *m_config;
    if (samePort)
        close();
    QList<QTcpServer *> fresh;
    if (!bindListeners(config, &fresh, error)) {
        if (samePort) {
            QString ignored;
            if (bindListeners(oldConfig, &fresh, &ignored))
                adoptListeners(fresh);
        }
        return false;
    }
    close();
    adoptListeners(fresh);
    setConfig(config);
    const qint64 descriptors = DescriptorLimit::softLimit();
    m_budget = DescriptorLimit::budget(descriptors, config.maxConnections);
    m_upstream->setMaxConnections(m_budget.maxUpstreamConnections);
    const DescriptorBudget budget = m_budget;
    forEachWorker([budget](ProxyServer *worker) {
        worker->m_budget = budget;
        worker->m_upstream->setMaxConnections(budget.maxUpstreamConnections);
        worker->m_shuttingDown = false;
        worker->m_closingConnections = false;
    });
    m_shuttingDown = false;
    m_closingConnections = false;
    const quint16 port = this->port();
    qCInfo(lcServer).noquote() << "listening on" << config.endpointUrl(port) << "forwarding to"
                               << config.upstream.toString();
    qCInfo(lcServer).noquote() << "open-file limit" << descriptors << "- serving up to"
                               << m_budget.maxConnections << "connections with up to"
                               << m_budget.maxUpstreamConnections << "upstream connections, on" << servingThreads()
                               << "thread(s)";
    return true;
}

bool ProxyServer::closeAnIdleConnection()
{
    // A kept-alive connection waiting for its next request yields to a new client (as nginx does).
    for (HttpConnection *connection : std::as_const(m_connections)) {
        if (connection->isKeptAliveIdle() && !m_yielding.contains(connection)) {
            m_yielding.insert(connection);
            connection->closeGracefully();
            return true;
        }
    }
    return false;
}

QByteArray ProxyServer::refusalAnswer()
{
    if (!m_lastCapWarning.isValid() || m_lastCapWarning.elapsed() > 10000) {
        qCWarning(lcServer).noquote() << "connection limit of" << m_budget.maxConnections
                                      << "reached; answering 503 to new connections (proxy/maxConnections)";
        m_lastCapWarning.start();
    }
    const QByteArray body
        = openAiErrorBody(QStringLiteral("KeyRelay is serving its maximum of %1 connections; retry shortly")
                              .arg(m_budget.maxConnections),
                          QStringLiteral("keyrelay_error"), QStringLiteral("too_many_connections"));
    return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
           "Retry-After: 1\r\nConnection: close\r\nContent-Length: "
        + QByteArray::number(body.size()) + "\r\n\r\n" + body;
}

void ProxyServer::refuseDescriptor(qintptr descriptor)
{
    if (m_lingeringRefusals < MaxLingeringRefusals) {
        auto *socket = new QTcpSocket(this);
        if (socket->setSocketDescriptor(descriptor)) {
            refuseConnection(socket);
            return;
        }
        delete socket;
    }
    // Every spare descriptor is already lingering: answer, end writing and close before the next accept(),
    // so that a burst of refusals never holds descriptors that connections upstream need. The answer fits
    // a new socket's send buffer; what already arrived of the request is read first, since closing with it
    // unread makes the kernel send a reset instead of the answer.
    const int fd = int(descriptor);
    const QByteArray answer = refusalAnswer();
    char discard[4096];
    while (::recv(fd, discard, sizeof discard, MSG_DONTWAIT) > 0) {
    }
    [[maybe_unused]] const ssize_t sent = ::send(fd, answer.constData(), size_t(answer.size()),
                                                 MSG_DONTWAIT | MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
    while (::recv(fd, discard, sizeof discard, MSG_DONTWAIT) > 0) {
    }
    ::close(fd);
}

void ProxyServer::refuseConnection(QTcpSocket *socket)
{
    const QByteArray answer = refusalAnswer();
    socket->setParent(this);
    socket->readAll(); // what already arrived of the request: closing with it unread sends a reset
    // A polite close: the answer, then the end of writing (FIN), and what the client still sends is read
    // and dropped until it closes. Closing with its request unread would make the kernel send a reset,
    // and a client that had not read the 503 yet would see only "connection reset".
    ++m_lingeringRefusals;
    connect(socket, &QObject::destroyed, this, [this] { --m_lingeringRefusals; });
    connect(socket, &QTcpSocket::readyRead, socket, [socket] { socket->readAll(); });
    connect(socket, &QTcpSocket::bytesWritten, socket, [socket] {
        if (socket->bytesToWrite() == 0 && socket->socketDescriptor() >= 0)
            ::shutdown(int(socket->socketDescriptor()), SHUT_WR);
    });
    connect(socket, &QTcpSocket::disconnected, socket, &QObject::deleteLater);
    socket->write(answer);
    // A client that neither reads nor closes: its descriptor is wanted.
    QTimer::singleShot(RefusalLingerMs, socket, [socket] {
        socket->abort();
        socket->deleteLater();
    });
}

bool ProxyServer::bindListeners(const ProxyConfig &config, QList<QTcpServer *> *listeners, QString *error)
{
    const QList<QHostAddress> addresses = config.listenAddresses();
    quint16 port = config.listenPort;
    for (const QHostAddress &address : addresses) {
        auto *server = new Listener([this](qintptr descriptor) { onIncoming(descriptor); }, this);
        server->setListenBacklogSize(1024);
        server->setMaxPendingConnections(1024);
        if (!server->listen(address, port)) {
            const bool optional = addresses.size() > 1 && address.protocol() == QAbstractSocket::IPv6Protocol;
            if (optional) { // "localhost" on a machine without IPv6: IPv4 alone is fine
                qCInfo(lcServer).noquote()
                    << "not listening on" << address.toString() << ":" << server->errorString();
                delete server;
                continue;
            }
            const bool inUse = server->serverError() == QAbstractSocket::AddressInUseError;
            *error = inUse
                ? QStringLiteral("port %1 on %2 is already in use by another program; choose another "
                                 "port or stop that program")
                      .arg(port)
                      .arg(address.toString())
                : QStringLiteral("cannot listen on %1 port %2: %3")
                      .arg(address.toString())
                      .arg(port)
                      .arg(server->errorString());
            delete server;
            qDeleteAll(*listeners);
            listeners->clear();
            return false;
        }
        port = server->serverPort(); // port 0: the second listener takes the same port as the first
        listeners->append(server);
    }
    return true;
}

void ProxyServer::adoptListeners(const QList<QTcpServer *> &listeners)
{
    for (QTcpServer *server : listeners) {
        connect(server, &QTcpServer::acceptError, this,
                [this, server](QAbstractSocket::SocketError socketError) {
                    // Out of descriptors (or another accept failure): Qt pauses the listener. Retry shortly
                    // instead of spinning, and keep serving the connections that exist.
                    if (!m_lastAcceptWarning.isValid() || m_lastAcceptWarning.elapsed() > 10000) {
                        qCWarning(lcServer).noquote()
                            << "cannot accept a connection:" << server->errorString() << socketError
                            << "- retrying; open connections:" << m_connections.size();
                        m_lastAcceptWarning.start();
                    }
                    server->pauseAccepting();
                    QTimer::singleShot(AcceptRetryMs, server, [server] { server->resumeAccepting(); });
                });
        m_listeners.append(server);
    }
}

void ProxyServer::close()
{
    for (QTcpServer *server : std::as_const(m_listeners)) {
        server->close();
        server->deleteLater();
    }
    m_listeners.clear();
    // Kept-alive connections must not go on serving a stopped proxy or an old port: idle ones close
    // now, busy ones after the response in flight.
    const auto connections = m_connections;
    for (HttpConnection *connection : connections) {
        if (connection->isIdle())
            connection->closeGracefully();
        else
            connection->closeAfterResponse();
    }
    forEachWorker([](ProxyServer *worker) { worker->close(); });
}

bool ProxyServer::isListening() const
{
    return !m_listeners.isEmpty();
}

quint16 ProxyServer::port() const
{
    return m_listeners.isEmpty() ? 0 : m_listeners.first()->serverPort();
}

void ProxyServer::onIncoming(qintptr descriptor)
{
    // The budget is decided here, at accept time, for every thread: the count includes connections handed
    // to a worker that has not taken them yet.
    if (m_shared->connections.load() >= m_budget.maxConnections && !closeAnIdleConnection()) {
        refuseDescriptor(descriptor);
        return;
    }
    ++m_shared->connections;
    // The thread with the fewest connections serves it, this one on a tie: a desktop client's few
    // connections stay on the accepting thread (no hand-over to wait for), a busy proxy spreads evenly.
    ProxyServer *least = this;
    for (const Worker &worker : std::as_const(m_workers)) {
        if (worker.server->m_assigned.load() < least->m_assigned.load())
            least = worker.server;
    }
    ++least->m_assigned;
    if (least == this) {
        adoptSocket(descriptor);
        return;
    }
    ProxyServer *worker = least;
    QMetaObject::invokeMethod(
        worker, [worker, descriptor] { worker->adoptSocket(descriptor); }, Qt::QueuedConnection);
}

void ProxyServer::adoptSocket(qintptr descriptor)
{
    // Counted against the budget by onIncoming() already.
    auto *socket = new QTcpSocket(this);
    if (!socket->setSocketDescriptor(descriptor)) {
        ::close(int(descriptor));
        delete socket;
        --m_shared->connections;
        --m_assigned;
        return;
    }
    if (!m_config->allowRemoteClients && !socket->peerAddress().isLoopback()) {
        qCWarning(lcServer).noquote() << "refused a connection from" << socket->peerAddress().toString();
        socket->abort();
        socket->deleteLater();
        --m_shared->connections;
        --m_assigned;
        return;
    }
    HttpLimits limits;
    limits.maxBodyBytes = m_config->maxBodyBytes;
    limits.headTimeoutMs = m_config->headTimeoutSec * 1000;
    auto *connection = new HttpConnection(socket, limits, this);
    m_connections.insert(connection);
    connect(connection, &HttpConnection::requestReceived, this, &ProxyServer::onRequest);
    connect(connection, &HttpConnection::closed, this, [this, connection] {
        if (m_connections.remove(connection)) {
            --m_shared->connections;
            --m_assigned;
        }
        m_yielding.remove(connection);
        checkDrained();
    });
}

void ProxyServer::onRequest(HttpConnection *connection, const HttpRequest &request)
{
    const AccessPolicy &policy = *m_policy;
    if (m_shuttingDown) {
        connection->sendResponse(503, { { "Content-Type", "application/json" }, { "Connection", "close" } },
                                 openAiErrorBody(QStringLiteral("KeyRelay is shutting down"),
                                                 QStringLiteral("keyrelay_error"),
                                                 QStringLiteral("shutting_down")));
        return;
    }
    // A page on another site must not reach the keys through DNS rebinding: on loopback, the Host
    // header has to name this machine (or a name the user listed for a reverse proxy).
    const bool remoteListener = m_config->allowRemoteClients || !connection->localAddress().isLoopback();
    if (!policy.hostAllowed(request.header("Host"), remoteListener)) {
        refuse(
            connection, request, 403,
            QStringLiteral("Host \"%1\" is not this machine; KeyRelay only serves local clients (a reverse "
                           "proxy's host name can be added to security/allowedHosts)")
                .arg(QString::fromUtf8(request.header("Host").left(200))),
            QStringLiteral("keyrelay_error"), QStringLiteral("host_not_allowed"));
        return;
    }
    // Browsers: only origins the user trusts get anything. The refusal carries no CORS headers, so the
    // page cannot even read it.
    const QByteArray origin = request.header("Origin").trimmed();
    const AccessPolicy::OriginVerdict verdict = policy.checkRequest(request);
    if (verdict == AccessPolicy::OriginVerdict::Ambiguous
        || verdict == AccessPolicy::OriginVerdict::CrossSiteWithoutOrigin) {
        refuse(connection, request, 403,
               verdict == AccessPolicy::OriginVerdict::Ambiguous
                   ? QStringLiteral("the request names more than one Origin; KeyRelay serves none of them")
                   : QStringLiteral("a request from another website (Sec-Fetch-Site: cross-site) without an "
                                    "Origin, such as an image or script tag; KeyRelay does not serve it"),
               QStringLiteral("permission_error"), QStringLiteral("origin_not_allowed"),
               { { "Vary", "Origin" } });
        return;
    }
    if (verdict == AccessPolicy::OriginVerdict::Blocked) {
        const QString message
            = QStringLiteral("the website %1 may not use KeyRelay; allow it in KeyRelay's settings "
                             "(security/allowedOrigins)")
                  .arg(QString::fromUtf8(origin.left(200)));
        const QByteArray body = openAiErrorBody(message, QStringLiteral("permission_error"),
                                                QStringLiteral("origin_not_allowed"));
        connection->sendResponse(403, { { "Content-Type", "application/json" }, { "Vary", "Origin" } }, body);
        recordLocal(request, 403, body.size(), message, true);
        return;
    }
    const bool allowedOrigin = verdict == AccessPolicy::OriginVerdict::Allowed;
    if (request.method == "OPTIONS") {
        // Preflights carry no credentials: answered before the token check, never forwarded.
        connection->sendResponse(204, allowedOrigin ? AccessPolicy::preflightHeaders(request) : HeaderList(),
                                 QByteArray());
        return;
    }
    const HeaderList cors = AccessPolicy::responseCorsHeaders(allowedOrigin ? origin : QByteArray());
    if (!policy.tokenAccepted(request)) {
        HeaderList headers = cors;
        headers += HeaderList { { "WWW-Authenticate", "Bearer realm=\"KeyRelay\"" } };
        refuse(connection, request, 401,
               QStringLiteral("KeyRelay requires its client access token: send it as the API key "
                              "(Authorization: Bearer <token>)"),
               QStringLiteral("invalid_request_error"), QStringLiteral("invalid_client_token"), headers);
        return;
    }
    const QByteArray method = request.method.toUpper();
    if (method == "CONNECT" || method == "TRACE" || method == "TRACK") {
        HeaderList headers = cors;
        headers += HeaderList { { "Allow", AllowedMethods } };
        refuse(connection, request, 405, QStringLiteral("method not supported by KeyRelay"),
               QStringLiteral("invalid_request_error"), QStringLiteral("method_not_allowed"), headers);
        return;
    }
    if (request.target == "/_keyrelay/health") {
        QJsonObject health;
        health.insert(QLatin1String("status"), QLatin1String("ok"));
        health.insert(QLatin1String("version"), QLatin1String(KEYRELAY_VERSION));
        health.insert(QLatin1String("upstream"), m_redactor->redact(m_config->upstream.toString()));
        health.insert(QLatin1String("keys"), m_keys->size());
        health.insert(QLatin1String("active_requests"), activeRequests());
        HeaderList headers = cors;
        headers += HeaderList { { "Content-Type", "application/json" } };
        headers += HeaderList { { "Cache-Control", "no-store" } };
        connection->sendResponse(200, headers, QJsonDocument(health).toJson(QJsonDocument::Compact));
        return;
    }
    if (request.target == "/_keyrelay/status" && (request.method == "GET" || request.method == "HEAD")) {
        HeaderList headers = cors;
        headers += HeaderList { { "Content-Type", "application/json" } };
        headers += HeaderList { { "Cache-Control", "no-store" } };
        connection->sendResponse(200, headers, statusJson());
        return;
    }
    // Several providers: the model list is every provider's, merged here.
    if (!m_config->providers.isEmpty() && (request.method == "GET" || request.method == "HEAD")
        && (request.target == "/v1/models" || request.target.startsWith("/v1/models?"))) {
        const AccessPolicy &accessPolicy = *m_policy;
        bool viaApiKeyHeader = false;
        const QString clientKey = QString::fromUtf8(HeaderPolicy::clientCredential(
            request, [&accessPolicy](const QByteArray &value) { return accessPolicy.isToken(value); },
            &viaApiKeyHeader));
        auto *list = new ModelListRequest(connection, cors, m_directory, m_upstream,
                                          m_upstreamAccess->extraCaCertificatesPem, m_config->connectTimeoutSec,
                                          clientKey, m_redactor, this);
        connect(list, &ModelListRequest::answered, this,
                [this, request](int status, qint64 bytes, const QString &problems) {
                    recordLocal(request, status, bytes, problems.isEmpty() ? QString()
                                                                           : QStringLiteral("some providers' model lists failed: ") + problems);
                });
        list->start();
        return;
    }
    auto *exchange = new ProxyExchange(m_shared->nextId++, connection, request, m_config, m_policy, cors, m_keys,
                                       m_upstreamAccess, m_redactor, this);
    exchange->setProviders(m_directory);
    connect(exchange, &ProxyExchange::providerFailed, this, [this](RequestRecord record) {
        record.id = m_shared->nextId++;
        emitRecord(std::move(record));
    });
    m_exchanges.insert(exchange);
    ++m_shared->activeRequests;
    connect(exchange, &ProxyExchange::finished, this, &ProxyServer::onExchangeFinished);
    connect(exchange, &QObject::destroyed, this, [this, exchange] {
        if (m_exchanges.remove(exchange))
            --m_shared->activeRequests;
        if (m_exchanges.isEmpty() && !m_trimScheduled) {
            // Give the memory of a burst back to the system once the proxy is quiet again.
            m_trimScheduled = true;
            QTimer::singleShot(TrimDelayMs, this, [this] {
                m_trimScheduled = false;
                if (m_exchanges.isEmpty())
                    ::malloc_trim(0);
            });
        }
        checkDrained();
    });
    exchange->start();
}

QByteArray ProxyServer::statusJson() const
{
    // Tokens per (provider, key): a key entered for two providers is two rows.
    QHash<QString, UsageRow> tokensByKey;
    QHash<QString, UsageRow> totalByProvider;
    QHash<QString, UsageRow> todayByProvider;
    UsageStore *usage = m_usage.load();
    if (usage) {
        const QList<UsageRow> rows = usage->totals(UsageStore::GroupBy::Key);
        for (const UsageRow &row : rows)
            tokensByKey.insert(row.provider + QLatin1Char('\n') + row.keyId, row);
        for (const UsageRow &row : usage->totals(UsageStore::GroupBy::Provider))
            totalByProvider.insert(row.provider, row);
        for (const UsageRow &row : usage->forDay(usage->today(), UsageStore::GroupBy::Provider))
            todayByProvider.insert(row.provider, row);
    }
    const auto stateName = [](KeyHealth health, bool enabled) {
        if (!enabled)
            return QStringLiteral("disabled");
        switch (health) {
        case KeyHealth::Ok:
            return QStringLiteral("ok");
        case KeyHealth::RateLimited:
            return QStringLiteral("cooling");
        case KeyHealth::Invalid:
            return QStringLiteral("invalid");
        case KeyHealth::Exhausted:
            return QStringLiteral("exhausted");
        case KeyHealth::Unknown:
            break;
        }
        return QStringLiteral("unknown");
    };
    const auto keysOf = [&](const KeyPool *pool, const QString &providerId) {
      QJsonArray keys;
      const QList<KeyStatus> statuses = pool->snapshot();
      for (const KeyStatus &status : statuses) {
        const UsageRow tokens = tokensByKey.value(providerId + QLatin1Char('\n') + status.id);
        QJsonObject key;
        key.insert(QLatin1String("provider"), providerId);
        key.insert(QLatin1String("id"), status.id);
        key.insert(QLatin1String("label"), m_redactor->redact(status.label));
        key.insert(QLatin1String("masked"), status.masked);
        key.insert(QLatin1String("state"), stateName(status.health, status.enabled));
        key.insert(QLatin1String("reason"), m_redactor->redact(status.lastError));
        key.insert(QLatin1String("until"),
                   status.health != KeyHealth::Ok && status.coolingUntil.isValid()
                       ? QJsonValue(status.coolingUntil.toUTC().toString(Qt::ISODate))
                       : QJsonValue());
        key.insert(QLatin1String("requests"), qint64(status.requests));
        key.insert(QLatin1String("errors"), qint64(status.errors));
        key.insert(QLatin1String("promptTokens"), tokens.promptTokens);
        key.insert(QLatin1String("completionTokens"), tokens.completionTokens);
        keys.append(key);
      }
      return keys;
    };
    // Every key once (with the provider it serves), and each provider with its own.
    QJsonArray keys;
    QJsonArray providers;
    QSet<const KeyPool *> listed;
    for (const ProviderEndpoint &endpoint : m_directory->endpoints) {
        const QJsonArray own = keysOf(endpoint.keys, endpoint.config.id);
        if (!listed.contains(endpoint.keys)) {
            listed.insert(endpoint.keys);
            for (const QJsonValue &key : own)
                keys.append(key);
        }
        QJsonObject provider;
        provider.insert(QLatin1String("id"), endpoint.config.id);
        provider.insert(QLatin1String("name"), endpoint.config.displayName());
        provider.insert(QLatin1String("kind"), ProviderConfig::kindName(endpoint.config.kind));
        provider.insert(QLatin1String("baseUrl"), m_redactor->redact(
                            ProxyConfig::withoutUserInfo(endpoint.config.baseUrl.toString())));
        provider.insert(QLatin1String("enabled"), endpoint.config.enabled);
        QJsonArray models;
        for (const QString &model : endpoint.config.models)
            models.append(model);
        for (const ModelAlias &alias : endpoint.config.aliases)
            models.append(alias.alias);
        provider.insert(QLatin1String("models"), models);
        provider.insert(QLatin1String("keys"), endpoint.keys == m_noKeys ? QJsonArray() : own);
        const auto usageOf = [](const UsageRow &row) {
            QJsonObject figures;
            figures.insert(QLatin1String("requests"), row.requests);
            figures.insert(QLatin1String("promptTokens"), row.promptTokens);
            figures.insert(QLatin1String("completionTokens"), row.completionTokens);
            figures.insert(QLatin1String("totalTokens"), row.totalTokens);
            return figures;
        };
        if (usage) {
            provider.insert(QLatin1String("today"), usageOf(todayByProvider.value(endpoint.config.id)));
            provider.insert(QLatin1String("total"), usageOf(totalByProvider.value(endpoint.config.id)));
        }
        providers.append(provider);
    }
    QJsonObject today;
    if (usage) {
        const UsageRow row = usage->todayTotal();
        today.insert(QLatin1String("date"), usage->today().toString(Qt::ISODate));
        today.insert(QLatin1String("requests"), row.requests);
        today.insert(QLatin1String("promptTokens"), row.promptTokens);
        today.insert(QLatin1String("completionTokens"), row.completionTokens);
        today.insert(QLatin1String("totalTokens"), row.totalTokens);
    }
    QJsonObject root;
    root.insert(QLatin1String("keys"), keys);
    root.insert(QLatin1String("providers"), providers);
    root.insert(QLatin1String("today"), today);
    root.insert(QLatin1String("activeRequests"), activeRequests());
    return QJsonDocument(root).toJson(QJsonDocument::Compact);
}

void ProxyServer::refuse(HttpConnection *connection, const HttpRequest &request, int status,
                         const QString &message, const QString &type, const QString &code,
                         const HeaderList &extraHeaders)
{
    HeaderList headers = extraHeaders;
    headers.prepend(qMakePair(QByteArray("Content-Type"), QByteArray("application/json")));
    const QByteArray body = openAiErrorBody(message, type, code);
    connection->sendResponse(status, headers, body);
    recordLocal(request, status, body.size(), message);
}

void ProxyServer::recordLocal(const HttpRequest &request, int status, qint64 bytes, const QString &error,
                              bool originBlocked)
{
    RequestRecord record;
    record.id = m_shared->nextId++;
    record.startedAt = QDateTime::currentDateTime();
    record.method = QString::fromLatin1(request.method);
    record.path = QString::fromUtf8(request.target);
    record.status = status;
    record.latencyMs = 0;
    record.requestBytes = request.body.size();
    record.responseBytes = bytes;
    record.error = error;
    record.origin = QString::fromUtf8(request.header("Origin").trimmed().left(200));
    record.originBlocked = originBlocked;
    emitRecord(record);
}

void ProxyServer::emitRecord(RequestRecord record)
{
    record.path = m_redactor->redact(record.path);
    record.error = m_redactor->redact(record.error);
    record.model = m_redactor->redact(record.model);
    record.keyLabel = m_redactor->redact(record.keyLabel);
    record.origin = m_redactor->redact(record.origin);
    // Booked here, in the proxy thread, so that the status endpoint counts a request the moment it
    // ends (the UI receives records in batches a little later).
    if (UsageStore *usage = m_usage.load(); usage && !record.keyId.isEmpty())
        usage->record(UsageEvent::fromRecord(record));
    Q_EMIT requestFinished(record);
}

void ProxyServer::onExchangeFinished(const RequestRecord &record)
{
    emitRecord(record);
}

void ProxyServer::onWorkerDrained()
{
    if (m_workersDraining > 0)
        --m_workersDraining;
    checkDrained();
}

void ProxyServer::shutdown(int graceMs)
{
    m_shuttingDown = true;
    m_workersDraining = int(m_workers.size());
    for (const Worker &worker : std::as_const(m_workers)) {
        ProxyServer *server = worker.server;
        QMetaObject::invokeMethod(
            server, [server, graceMs] { server->shutdown(graceMs); }, Qt::QueuedConnection);
    }
    close();
    if (m_exchanges.isEmpty()) {
        checkDrained();
        return;
    }
    qCInfo(lcServer) << "waiting up to" << graceMs << "ms for" << m_exchanges.size()
                     << "request(s) in flight";
    QTimer::singleShot(graceMs, this, [this] {
        const auto exchanges = m_exchanges;
        for (ProxyExchange *exchange : exchanges)
            exchange->abort(QStringLiteral("KeyRelay is shutting down"));
    });
}

void ProxyServer::checkDrained()
{
    if (!m_shuttingDown || !m_exchanges.isEmpty())
        return;
    if (!m_connections.isEmpty() && !m_closingConnections) {
        // Nothing is in flight any more, but the last responses may still sit in the sockets' buffers:
        // close gracefully so that they reach the clients, and report drained once every connection is
        // gone (closed() calls back here). A client that stops reading must not hold up the exit.
        m_closingConnections = true;
        const auto connections = m_connections;
        for (HttpConnection *connection : connections)
            connection->closeGracefully();
        QTimer::singleShot(ConnectionFlushTimeoutMs, this, [this] {
            if (!m_closingConnections)
                return;
            const auto remaining = m_connections;
            for (HttpConnection *connection : remaining)
                connection->abortResponse();
        });
    }
    if (!m_shuttingDown || !m_connections.isEmpty() || m_workersDraining > 0)
        return;
    m_shuttingDown = false; // emit once
    m_closingConnections = false;
    Q_EMIT drained();
}

} // namespace keyrelay
