#include "upstreampool.h"

#include "logging.h"

#include <QNetworkAccessManager>
#include <QNetworkProxyFactory>

namespace keyrelay {

namespace {
class SystemProxyFactory : public QNetworkProxyFactory
{
public:
    QList<QNetworkProxy> queryProxy(const QNetworkProxyQuery &query) override
    {
        return QNetworkProxyFactory::systemProxyForQuery(query);
    }
};
} // namespace

UpstreamPool::UpstreamPool(int maxManagers, QObject *parent)
    : QObject(parent), m_maxManagers(qMax(1, maxManagers))
{
}

UpstreamPool::~UpstreamPool() = default;

void UpstreamPool::setProxy(const QNetworkProxy &proxy, bool useSystemProxy)
{
    m_proxy = proxy;
    m_useSystemProxy = useSystemProxy;
    for (const Slot &slot : m_slots)
        configure(slot.manager);
}

void UpstreamPool::configure(QNetworkAccessManager *manager) const
{
    manager->setRedirectPolicy(QNetworkRequest::ManualRedirectPolicy);
    manager->setAutoDeleteReplies(false);
    manager->setStrictTransportSecurityEnabled(false);
    if (m_useSystemProxy) {
        manager->setProxyFactory(new SystemProxyFactory); // takes ownership
    } else {
        manager->setProxyFactory(nullptr);
        manager->setProxy(m_proxy);
    }
}

QNetworkAccessManager *UpstreamPool::createManager()
{
    auto *manager = new QNetworkAccessManager(this);
    configure(manager);
    m_slots.push_back({ manager, 0 });
    qCDebug(lcForward) << "upstream pool grew to" << m_slots.size() << "network managers";
    return manager;
}

QNetworkAccessManager *UpstreamPool::acquire()
{
    Slot *best = nullptr;
    for (Slot &slot : m_slots) {
        if (!best || slot.inFlight < best->inFlight)
            best = &slot;
    }
    if (!best || (best->inFlight >= ConnectionsPerManager && int(m_slots.size()) < m_maxManagers)) {
        createManager();
        best = &m_slots.back();
    }
    ++best->inFlight;
    return best->manager;
}

void UpstreamPool::release(QNetworkAccessManager *manager)
{
    for (Slot &slot : m_slots) {
        if (slot.manager == manager) {
            --slot.inFlight;
            if (slot.inFlight == 0 && slot.clearWhenIdle) {
                // After the replies' own queued clean-up has run (see ProxyExchange::dropReply()).
                QMetaObject::invokeMethod(
                    this, [this, manager] { clearCacheIfIdle(manager); }, Qt::QueuedConnection);
            }
            return;
        }
    }
}

void UpstreamPool::onTlsFailure(QNetworkAccessManager *manager)
{
    for (Slot &slot : m_slots) {
        if (slot.manager == manager)
            slot.clearWhenIdle = true;
    }
}

void UpstreamPool::clearCacheIfIdle(QNetworkAccessManager *manager)
{
    for (Slot &slot : m_slots) {
        if (slot.manager == manager && slot.inFlight == 0 && slot.clearWhenIdle) {
            slot.clearWhenIdle = false;
            manager->clearConnectionCache();
            ++m_cacheClears;
        }
    }
}

int UpstreamPool::inFlight() const
{
    int total = 0;
    for (const Slot &slot : m_slots)
        total += slot.inFlight;
    return total;
}

} // namespace keyrelay
