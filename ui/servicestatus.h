// The one source of truth for what the window and the tray say about the proxy: its state (stopped,
// running, running with problems, failed), the line that explains it, the endpoint and today's requests.
#pragma once

#include "servicehealth.h"

#include <QDate>
#include <QObject>
#include <QTimer>

namespace keyrelay {

class KeyPool;
class ProxyService;
class UsageStore;
struct RequestRecord;

class ServiceStatus : public QObject
{
    Q_OBJECT
public:
    enum class State {
        Stopped,
        Running,
        Degraded, ///< listening, but the upstream fails or most keys cannot be used
        Failed, ///< could not start (port in use, bad address...)
    };
    Q_ENUM(State)

    /// @p usage may be null: "requests today" are then counted here, by the same rule as the store's.
    ServiceStatus(ProxyService *service, KeyPool *pool, const UsageStore *usage, QObject *parent = nullptr);

    State state() const { return m_state; }
    /// The API base URL clients use (also while stopped: where it would be).
    QString endpoint() const;
    /// "● Running", "● Stopped", ...
    QString stateText() const;
    /// What the state means for the user: why it failed, what is wrong; empty while all is well.
    QString detailText() const;
    HealthAssessment health() const { return m_health; }
    /// Requests sent upstream with one of the pool's keys today: the usage store's figure, the same as the
    /// Usage page's "requests" (refusals by KeyRelay itself and pass-through requests are not counted).
    quint64 requestsToday() const { return m_requestsToday; }

    /// For tests: the clock of the window of recent requests.
    void setClock(ServiceHealth::Clock clock);

public Q_SLOTS:
    /// Reads everything again now (normally driven by the service's and the pool's signals).
    void refresh();
    /// Forgets earlier request failures (new settings: the upstream may be another one now).
    void clearRecentRequests();

Q_SIGNALS:
    /// state(), detailText() or endpoint() changed.
    void changed();
    void requestsTodayChanged(quint64 requestsToday);

private:
    void onRequestFinished(const RequestRecord &record);
    void updateRequestsToday();
    void scheduleHealthCheck();

    ProxyService *m_service;
    KeyPool *m_pool;
    const UsageStore *m_usage;
    ServiceHealth m_healthWindow;
    HealthAssessment m_health;
    State m_state = State::Stopped;
    QString m_detail;
    QString m_endpoint;
    quint64 m_requestsToday = 0;
    quint64 m_ownCount = 0; ///< without a usage store
    QDate m_ownCountDay;
    QTimer m_countTimer; ///< coalesces count updates under load
    QTimer m_healthTimer; ///< re-assesses when a failure leaves the window
    QTimer m_dayTimer; ///< "requests today" starts again at midnight
};

} // namespace keyrelay
