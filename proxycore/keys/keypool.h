// The user's API keys, handed out round-robin, with per-key health and counters.
#pragma once

#include <QDateTime>
#include <QHash>
#include <QList>
#include <QMutex>
#include <QObject>
#include <QReadWriteLock>
#include <QSet>
#include <QString>

#include <atomic>
#include <functional>

namespace keyrelay {

struct ApiKey
{
    QString secret;
    QString label; ///< user's name for the key; empty = use the masked form
    bool enabled = true;
};

enum class KeyHealth {
    Unknown, ///< not used yet
    Ok, ///< last request succeeded
    RateLimited, ///< cooling: upstream answered 429 for a model; skipped for that model until the reset time
    Invalid, ///< 401, or a 403 about the key: skipped; tried again after [health] recheckInvalidSec
    Exhausted, ///< 402 or 429 insufficient_quota: skipped; tried again after [health] recheckExhaustedSec
};

/// What an upstream answer says about the key that was used.
enum class KeyVerdict {
    Success, ///< the key works
    Invalid, ///< the key is refused
    Exhausted, ///< the key's quota or billing limit is used up
    RateLimited, ///< the key is rate-limited for this model for a while
    NotKeysFault, ///< about the request, the model, the region or the upstream: never held against the key
};

struct UpstreamVerdict
{
    KeyVerdict verdict = KeyVerdict::NotKeysFault;
    QString reason; ///< e.g. "401 invalid_api_key: Incorrect API key provided" (never the key)
};

/// The key-health settings ([health] in the settings file).
struct HealthPolicy
{
    int recheckInvalidSec = 300;
    int recheckExhaustedSec = 3600;
    int maxAttempts = 3; ///< keys tried for one request before the client sees the answer
    int maxConcurrentPerKey = 0; ///< requests one key may have in flight at once; 0 = no limit
};

struct KeyStatus
{
    QString label; ///< label, or the masked key
    QString masked; ///< e.g. "sk-…a1b2"
    bool enabled = true;
    KeyHealth health = KeyHealth::Unknown;
    QString lastError;
    quint64 requests = 0;
    quint64 errors = 0;
    QDateTime lastUsed;
    /// What "until" shows: RateLimited: the latest cooling end; Invalid/Exhausted: recheckAt.
    QDateTime coolingUntil;
    /// Invalid: when the background re-check runs; Exhausted: when one trial request may use it.
    QDateTime recheckAt;
    int inFlight = 0; ///< requests using the key now (leases not yet released)
    QString id; ///< KeyPool::keyId(): stable across edits of the list
    QHash<QString, QDateTime> coolingByModel; ///< RateLimited per model ("" = every model)
    QHash<QString, int> consecutive429; ///< per model, for the exponential backoff
};

/// What a request may use: one of the pool's keys, or the client's own key (pass-through mode).
struct KeyLease
{
    int index = -1; ///< index into the pool at the time, -1 in pass-through mode
    QString secret;
    QString label; ///< never the whole key
    QString keyId; ///< stable identity (report results by it: indexes change when the list is edited)
    /// Set when no key was handed out because every usable key is cooling: the earliest end.
    QDateTime retryAt;
    /// Set when no key was handed out because every usable key is at [health] maxConcurrentPerKey:
    /// wait for keyReleased() and ask again.
    bool busy = false;
    bool isValid() const { return !secret.isEmpty(); }
};

/// Thread-safe: the proxy thread takes keys, the UI edits and reads them.
class KeyPool : public QObject
{
    Q_OBJECT
public:
    explicit KeyPool(QObject *parent = nullptr);

    /// Replaces the keys. Counters and health survive for keys that stay (matched by secret).
    void setKeys(const QList<ApiKey> &keys);
    QList<ApiKey> keys() const;
    /// The secrets alone, under a lock of their own: safe to call while the pool's lock is held (the
    /// redaction step of every log message uses it).
    QStringList secrets() const;
    int size() const;
    bool isEmpty() const;
    void setEnabled(int index, bool enabled);
    void setLabel(int index, const QString &label);

    /// The key for a request for @p model: strict round-robin among usable keys (not disabled, not
    /// cooling for this model, not invalid, not exhausted before its trial time, not at the per-key
    /// limit of requests in flight), skipping @p excludeIds. Every valid lease must be given back with
    /// release() when its request ends.
    /// When every remaining key is cooling, no key is handed out and retryAt says when one frees up.
    /// When every remaining key is invalid or exhausted, the most promising one (due first) is tried,
    /// so that a fix upstream takes effect at once. Invalid only when no enabled key is left.
    KeyLease acquireFor(const QSet<QString> &excludeIds, const QString &model);
    /// The request that used the key @p keyId has ended (see acquireFor()).
    void release(const QString &keyId);

    /// Invalid keys whose background re-check is due: each is booked as being checked (its next
    /// re-check moves [health] recheckInvalidSec ahead, so a check that never answers is retried); and
    /// keys due for their first check (see checkSoon()), each taken once.
    QList<KeyLease> takeDueRechecks();
    /// Keys the user just added: each of @p keyIds that is enabled and still Unknown gets one check of the
    /// model list (no tokens), the first now and each next @p spreadMs later, so the key table shows their
    /// state before the first chat. A request that decides a key's state first makes its check moot.
    void checkSoon(const QStringList &keyIds, int spreadMs = 1000);
    /// When the next background re-check of an invalid key is due; invalid when no key needs one.
    QDateTime nextRecheckAt() const;
    /// Books what the upstream said about the key @p keyId (a key removed meanwhile is ignored).
    /// @p retryAfterMs: RateLimited: the upstream's reset time (Retry-After, x-ratelimit-reset-*), -1 if
    /// none.
    void report(const QString &keyId, const QString &model, KeyVerdict verdict, qint64 retryAfterMs,
                const QString &reason);
    /// Reads an upstream answer: status and (error) body.
    static UpstreamVerdict classify(int httpStatus, const QByteArray &body);
    /// "1s", "6m0s", "20ms", "1h2m3.5s", "7" (seconds) -> milliseconds; -1 when not a duration.
    static qint64 parseDurationMs(const QByteArray &text);

    void setPolicy(const HealthPolicy &policy);
    HealthPolicy policy() const;
    /// For tests: where "now" comes from (default: the system clock, UTC).
    void setClock(std::function<QDateTime()> clock);

    /// Pass-through mode: the client's key, or one of "k1|k2|k3" in rotation (the original proxy's form).
    KeyLease passThrough(const QString &clientKey);

    /// Clears a key's health after the user re-tested or re-enabled it.
    void resetHealth(int index);

    QList<KeyStatus> snapshot() const;

    /// "sk-…a1b2": enough to recognise a key, never enough to use it.
    static QString mask(const QString &secret);
    /// A key's stable identity: "k" + the first 12 hex digits of the SHA-256 of the secret. It does not
    /// change when the list is edited or reordered, and reveals nothing usable about the key.
    static QString keyId(const QString &secret);
    /// Keys from pasted text or a keys file: one per line, commas, or "k1|k2|k3"; blank lines and
    /// "#" comments ignored, whitespace trimmed, duplicates dropped, order kept.
    static QStringList parseKeyList(const QString &text);

Q_SIGNALS:
    /// Keys were added, removed or edited.
    void keysChanged();
    /// Counters or health of the key at @p index changed (with every request).
    void keyStatusChanged(int index);
    /// Counters or health changed since the last snapshot(): emitted once until snapshot() is called
    /// again, so that a view in another thread is woken once per refresh, not once per request.
    void statusChangedSinceSnapshot();
    /// A key stopped working (invalid, or rate-limited); @p reason is safe to show.
    void keyFailed(int index, const QString &label, const QString &reason);
    /// A key that was invalid or exhausted works again.
    void keyRecovered(int index, const QString &label);
    /// A request gave its key back (release()): a request waiting for a free key may ask again.
    void keyReleased();
    /// A key became invalid, or its re-check time changed: the background re-check reschedules.
    void recheckScheduleChanged();

private:
    struct Entry
    {
        ApiKey key;
        KeyStatus status;
        /// A key just added: when its first check is due (valid only while its health is Unknown).
        QDateTime firstCheckAt;
    };
    /// @p ignoreLimit: usable apart from [health] maxConcurrentPerKey.
    bool isUsable(const Entry &entry, const QDateTime &now, const QString &model,
                  bool ignoreLimit = false) const;
    bool atLimit(const Entry &entry) const;
    /// keyStatusChanged(), and statusChangedSinceSnapshot() once until the next snapshot().
    void emitStatusChanged(int index);
    /// Health back to Unknown (a re-enabled or re-tested key).
    static void clearHealth(KeyStatus &status);
    /// Recomputes what "until" shows, and RateLimited <-> Ok as cooling periods begin and end.
    static void refreshUntil(KeyStatus &status, const QDateTime &now);
    QDateTime coolingEnd(const Entry &entry, const QDateTime &now, const QString &model) const;
    QDateTime now() const;
    QString labelFor(const Entry &entry) const;

    mutable QMutex m_mutex;
    QList<Entry> m_entries;
    int m_cursor = 0;
    quint64 m_passThroughCounter = 0;
    HealthPolicy m_policy;
    mutable QReadWriteLock m_secretsLock;
    QStringList m_secretsSnapshot;
    std::function<QDateTime()> m_clock;
    mutable std::atomic<bool> m_statusNotified { false };
};

} // namespace keyrelay
