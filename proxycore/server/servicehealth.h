// Whether the running proxy actually serves: recent upstream failures and unusable keys, from records
// and key snapshots, with an injectable clock. No UI: the window and the tray show what it finds.
#pragma once

#include "keypool.h"
#include "requestrecord.h"

#include <QDateTime>
#include <QList>
#include <QString>

#include <deque>
#include <functional>

namespace keyrelay {

/// What ServiceHealth found; all counts, so that the UI says it in its own words.
struct HealthAssessment
{
    bool upstreamFailing = false; ///< most recent requests failed for the upstream's reasons
    int recentFailures = 0; ///< upstream failures among the requests counted in the window
    int recentRequests = 0; ///< requests counted in the window (successes and upstream failures)
    QString lastFailure; ///< the latest upstream failure's error text (or "HTTP 502")
    int lastFailureStatus = 0;

    bool keysFailing = false; ///< most enabled keys are not usable, or none is enabled
    int keys = 0; ///< keys in the pool (0: pass-through mode, never degraded for keys)
    int enabledKeys = 0;
    int unusableKeys = 0; ///< enabled keys that are invalid, out of quota or rate-limited now

    bool degraded() const { return upstreamFailing || keysFailing; }
    bool operator==(const HealthAssessment &other) const;
    bool operator!=(const HealthAssessment &other) const { return !(*this == other); }
};

/// Counts requests that say something about the upstream: a success (an answer below 500 from the
/// upstream, or KeyRelay's own answer after it) or an upstream failure (5xx: the upstream's own, or
/// KeyRelay's 502/504 when the upstream was unreachable, timed out or failed TLS). Refusals that are
/// the client's (4xx), requests the client left (status 0) and, with keys in the pool, a 5xx without a
/// key (KeyRelay's own 503: no enabled key, shutting down) are not counted. The window is the last
/// WindowSeconds, at most the last WindowRequests.
///
/// The upstream is failing when at least MinFailures counted requests failed and at least half did,
/// unless the last RecoverAfterSuccesses counted requests succeeded. Keys are failing when the pool has
/// keys and none is enabled, or more than half of the enabled ones are not usable now.
class ServiceHealth
{
public:
    using Clock = std::function<QDateTime()>;
    static constexpr int WindowSeconds = 60;
    static constexpr int WindowRequests = 20;
    static constexpr int MinFailures = 2;
    static constexpr int RecoverAfterSuccesses = 2;

    enum class Outcome { NotCounted, Success, UpstreamFailure };

    /// @p clock gives "now" (default: QDateTime::currentDateTimeUtc).
    explicit ServiceHealth(Clock clock = {});

    /// @p keysInPool: the pool has keys (a request without one was then refused by KeyRelay itself).
    static Outcome classify(const RequestRecord &record, bool keysInPool);

    /// Books a finished request at the clock's time.
    void addRequest(const RequestRecord &record);
    /// The pool's state now (KeyPool::snapshot()).
    void setKeys(const QList<KeyStatus> &keys);
    /// Forgets the requests (a new listener or new settings: old failures say nothing any more).
    void clearRequests();

    HealthAssessment assess() const;
    /// When assess() may change without new input (a request leaves the window, a key's cooling ends);
    /// invalid when nothing is due.
    QDateTime nextChange() const;
    /// The clock's time.
    QDateTime now() const;

private:
    struct Entry
    {
        QDateTime at;
        bool failed = false;
        int status = 0;
        QString error;
    };
    /// The entries still in the window at @p now.
    QList<Entry> window(const QDateTime &now) const;

    Clock m_clock;
    std::deque<Entry> m_entries; ///< oldest first, at most WindowRequests
    QList<KeyStatus> m_keys;
};

} // namespace keyrelay
