#include "servicestatus.h"

#include "keypool.h"
#include "proxyservice.h"
#include "usagestore.h"

#include <QLocale>

namespace keyrelay {

namespace {
constexpr int CoalesceMs = 300;
} // namespace

ServiceStatus::ServiceStatus(ProxyService *service, KeyPool *pool, const UsageStore *usage, QObject *parent)
    : QObject(parent), m_service(service), m_pool(pool), m_usage(usage)
{
    // Thousands of requests per second must not mean thousands of label updates: one refresh per period.
    m_countTimer.setSingleShot(true);
    m_countTimer.setInterval(CoalesceMs);
    connect(&m_countTimer, &QTimer::timeout, this, &ServiceStatus::refresh);
    m_healthTimer.setSingleShot(true);
    connect(&m_healthTimer, &QTimer::timeout, this, &ServiceStatus::refresh);
    m_dayTimer.setSingleShot(true);
    connect(&m_dayTimer, &QTimer::timeout, this, &ServiceStatus::refresh);

    connect(m_service, &ProxyService::stateChanged, this, &ServiceStatus::refresh);
    connect(m_service, &ProxyService::started, this, [this] {
        clearRecentRequests(); // a new listener: earlier failures say nothing about it
    });
    connect(m_service, &ProxyService::stopped, this, &ServiceStatus::refresh);
    connect(m_service, &ProxyService::failed, this, &ServiceStatus::refresh);
    connect(m_service, &ProxyService::requestFinished, this, &ServiceStatus::onRequestFinished);
    const auto soon = [this] {
        if (!m_countTimer.isActive())
            m_countTimer.start();
    };
    connect(m_pool, &KeyPool::statusChangedSinceSnapshot, this, soon);
    connect(m_pool, &KeyPool::keysChanged, this, &ServiceStatus::refresh);
    refresh();
}

void ServiceStatus::setClock(ServiceHealth::Clock clock)
{
    m_healthWindow = ServiceHealth(std::move(clock));
    refresh();
}

QString ServiceStatus::endpoint() const
{
    return m_endpoint;
}

QString ServiceStatus::stateText() const
{
    switch (m_state) {
    case State::Running:
        return tr("● Running");
    case State::Degraded:
        return tr("● Running, with problems");
    case State::Stopped:
        return tr("● Stopped");
    case State::Failed:
        return tr("● Not running");
    }
    return QString();
}

QString ServiceStatus::detailText() const
{
    return m_detail;
}

void ServiceStatus::clearRecentRequests()
{
    m_healthWindow.clearRequests();
    refresh();
}

void ServiceStatus::onRequestFinished(const RequestRecord &record)
{
    m_healthWindow.addRequest(record);
    if (record.status > 0 && !record.keyId.isEmpty()) {
        // The store's rule (it books every request that used one of the pool's keys); only used without one.
        const QDate today = QDate::currentDate();
        if (today != m_ownCountDay) {
            m_ownCountDay = today;
            m_ownCount = 0;
        }
        ++m_ownCount;
    }
    if (!m_countTimer.isActive())
        m_countTimer.start();
}

void ServiceStatus::updateRequestsToday()
{
    quint64 count = 0;
    if (m_usage)
        count = quint64(qMax<qint64>(0, m_usage->todayTotal().requests));
    else
        count = m_ownCountDay == QDate::currentDate() ? m_ownCount : 0;
    // A new day starts at 0: wake up then, but only when there is something to reset.
    if (count > 0) {
        const QDateTime now = QDateTime::currentDateTime();
        const QDateTime midnight(now.date().addDays(1), QTime(0, 0));
        m_dayTimer.start(int(qBound(qint64(1000), now.msecsTo(midnight) + 1000, qint64(25) * 3600 * 1000)));
    } else {
        m_dayTimer.stop();
    }
    if (count == m_requestsToday)
        return;
    m_requestsToday = count;
    Q_EMIT requestsTodayChanged(count);
}

void ServiceStatus::refresh()
{
    m_countTimer.stop();
    m_healthWindow.setKeys(m_pool->snapshot());
    m_health = m_healthWindow.assess();
    updateRequestsToday();

    State state = State::Stopped;
    QString detail;
    QString endpoint = m_service->config().clientBaseUrl();
    switch (m_service->state()) {
    case ProxyService::State::Stopped:
        state = State::Stopped;
        detail = tr("The proxy is stopped; clients get \"connection refused\".");
        break;
    case ProxyService::State::Failed:
        state = State::Failed;
        detail = tr("The proxy could not start: %1").arg(m_service->lastError());
        break;
    case ProxyService::State::Running: {
        endpoint = m_service->clientBaseUrl();
        state = m_health.degraded() ? State::Degraded : State::Running;
        QStringList problems;
        if (m_health.upstreamFailing) {
            const QString last = m_health.lastFailure.isEmpty()
                ? tr("HTTP %1").arg(m_health.lastFailureStatus)
                : m_health.lastFailure;
            problems << tr("The upstream is failing: %1 of the last %2 requests failed (latest: %3).")
                            .arg(m_health.recentFailures)
                            .arg(m_health.recentRequests)
                            .arg(last);
        }
        if (m_health.keysFailing) {
            if (m_health.enabledKeys == 0)
                problems << tr("No key is enabled: KeyRelay refuses every request. Enable a key on the Keys "
                               "page.");
            else
                problems << tr("%1 of %2 enabled keys cannot be used now (invalid, quota used up or "
                               "rate-limited); see the Keys page.")
                                .arg(m_health.unusableKeys)
                                .arg(m_health.enabledKeys);
        }
        detail = problems.join(QLatin1Char(' '));
        break;
    }
    }
    scheduleHealthCheck();
    if (state == m_state && detail == m_detail && endpoint == m_endpoint)
        return;
    m_state = state;
    m_detail = detail;
    m_endpoint = endpoint;
    Q_EMIT changed();
}

void ServiceStatus::scheduleHealthCheck()
{
    const QDateTime next = m_healthWindow.nextChange();
    if (!next.isValid()) {
        m_healthTimer.stop();
        return;
    }
    const QDateTime now = m_healthWindow.now();
    m_healthTimer.start(int(qBound(qint64(0), now.msecsTo(next) + 1, qint64(24) * 3600 * 1000)));
}

} // namespace keyrelay
