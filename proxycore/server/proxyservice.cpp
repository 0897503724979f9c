#include "proxyservice.h"

#include "keypool.h"
#include "proxyserver.h"

#include <QTimerEvent>

namespace keyrelay {

ProxyService::ProxyService(KeyPool *keys, QObject *parent) : QObject(parent), m_redactor(keys)
{
    qRegisterMetaType<keyrelay::RequestRecord>();
    m_thread.setObjectName(QStringLiteral("KeyRelay proxy"));
    m_server = new ProxyServer(keys, &m_redactor);
    m_server->moveToThread(&m_thread);
    connect(&m_thread, &QThread::finished, m_server, &QObject::deleteLater);
    // Records cross to this thread in batches: the proxy thread queues them, the first of a batch
    // wakes this thread, which delivers the batch RecordBatchMs later. Under load that is a few
    // wake-ups per second instead of one per request (this thread is the GUI's); idle, nothing runs.
    connect(
        m_server, &ProxyServer::requestFinished, this,
        [this](const RequestRecord &record) {
            bool wake = false;
            {
                QMutexLocker lock(&m_recordsMutex);
                wake = m_records.isEmpty();
                m_records.append(record);
            }
            if (wake) {
                QMetaObject::invokeMethod(
                    this,
                    [this] {
                        if (!m_deliveryTimer.isActive())
                            m_deliveryTimer.start(RecordBatchMs, this);
                    },
                    Qt::QueuedConnection);
            }
        },
        Qt::DirectConnection);
    connect(m_server, &ProxyServer::drained, this, [this] {
        deliverRecords(); // every record before "stopped"
        setState(State::Stopped);
        Q_EMIT stopped();
        Q_EMIT shutdownComplete();
    });
    m_thread.start();
}

void ProxyService::timerEvent(QTimerEvent *event)
{
    if (event->timerId() != m_deliveryTimer.timerId())
        return QObject::timerEvent(event);
    deliverRecords();
}

void ProxyService::deliverRecords()
{
    m_deliveryTimer.stop();
    QList<RequestRecord> batch;
    {
        QMutexLocker lock(&m_recordsMutex);
        batch.swap(m_records);
    }
    for (const RequestRecord &record : std::as_const(batch))
        Q_EMIT requestFinished(record);
}

ProxyService::~ProxyService()
{
    m_thread.quit();
    m_thread.wait();
}

bool ProxyService::start(const ProxyConfig &config, QString *error)
{
    bool ok = false;
    bool stillListening = false;
    QString message;
    quint16 port = 0;
    QMetaObject::invokeMethod(
        m_server,
        [&] {
            ok = m_server->listen(config, &message);
            stillListening = m_server->isListening();
            port = m_server->port();
        },
        Qt::BlockingQueuedConnection);
    if (!ok && stillListening && m_state == State::Running) {
        // The new address could not be had: the proxy goes on serving where it was, with its old settings.
        m_port = port;
        if (error)
            *error = QStringLiteral("%1; KeyRelay keeps serving on %2").arg(message, endpointUrl());
        return false;
    }
    m_config = config;
    if (!ok) {
        m_lastError = message;
        m_port = 0;
        if (error)
            *error = message;
        setState(State::Failed);
        Q_EMIT failed(message);
        return false;
    }
    m_lastError.clear();
    m_port = port;
    setState(State::Running);
    Q_EMIT started(endpointUrl());
    return true;
}

void ProxyService::stop()
{
    QMetaObject::invokeMethod(
        m_server, [this] { m_server->close(); }, Qt::BlockingQueuedConnection);
    m_port = 0;
    if (m_state != State::Stopped) {
        setState(State::Stopped);
        Q_EMIT stopped();
    }
}

bool ProxyService::applyConfig(const ProxyConfig &config, QString *error)
{
    const bool listenChanged = config.listenHost != m_config.listenHost
        || config.listenPort != m_config.listenPort
        || config.allowRemoteClients != m_config.allowRemoteClients;
    if (m_state != State::Running || listenChanged) {
        if (m_state == State::Stopped && !listenChanged) {
            m_config = config;
            QMetaObject::invokeMethod(
                m_server, [this, config] { m_server->setConfig(config); }, Qt::BlockingQueuedConnection);
            return true;
        }
        return start(config, error);
    }
    const QStringList problems = config.validate();
    if (!problems.isEmpty()) {
        if (error)
            *error = problems.join(QStringLiteral("; "));
        return false;
    }
    m_config = config;
    QMetaObject::invokeMethod(
        m_server, [this, config] { m_server->setConfig(config); }, Qt::BlockingQueuedConnection);
    return true;
}

void ProxyService::shutdown(int graceMs)
{
    QMetaObject::invokeMethod(
        m_server, [this, graceMs] { m_server->shutdown(graceMs); }, Qt::QueuedConnection);
}

QString ProxyService::endpointUrl() const
{
    return m_config.endpointUrl(m_port);
}

int ProxyService::activeRequests() const
{
    int count = 0;
    QMetaObject::invokeMethod(
        m_server, [&] { count = m_server->activeRequests(); }, Qt::BlockingQueuedConnection);
    return count;
}

void ProxyService::setState(State state)
{
    if (m_state == state)
        return;
    m_state = state;
    Q_EMIT stateChanged(state);
}

} // namespace keyrelay

namespace keyrelay {
void ProxyService::setUsageStore(UsageStore *usage)
{
    m_server->setUsageStore(usage); // an atomic pointer: safe from this thread
}

void ProxyService::setProviderPools(const QHash<QString, KeyPool *> &pools)
{
    QMetaObject::invokeMethod(
        m_server, [this, pools] { m_server->setProviderPools(pools); }, Qt::BlockingQueuedConnection);
}

} // namespace keyrelay
