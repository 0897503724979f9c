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
    QDateTime
        coolingUntil; ///< RateLimited: the latest cooling end; Invalid/Exhausted: when it is tried again
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

    /// Next usable key in strict round-robin order, skipping disabled, invalid and cooling keys and the
    /// indexes in @p exclude. When every enabled key is cooling down, the one that recovers first is used.
    /// Returns an invalid lease when no key can be used.
    KeyLease acquire(const QSet<int> &exclude = {});
    /// Whether acquire(exclude) would find another key.
    bool hasUsableKey(const QSet<int> &exclude) const;

    /// The key for a request for @p model: strict round-robin among usable keys (not disabled, not
    /// cooling for this model, not invalid/exhausted before their re-check time), skipping @p excludeIds.
    /// When every remaining key is cooling, no key is handed out and retryAt says when one frees up.
    /// When every remaining key is invalid or exhausted, the most promising one (due first) is tried,
    /// so that a fix upstream takes effect at once. Invalid only when no enabled key is left.
    KeyLease acquireFor(const QSet<QString> &excludeIds, const QString &model);
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

    /// Records the outcome of a request made with the key at @p index.
    /// 401 marks the key invalid, 429 cools it down for @p retryAfterSec (default 20 s).
    void reportResult(int index, int httpStatus, int retryAfterSec = -1, const QString &error = QString());
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
    /// Counters or health of the key at @p index changed.
    void keyStatusChanged(int index);
    /// A key stopped working (invalid, or rate-limited); @p reason is safe to show.
    void keyFailed(int index, const QString &label, const QString &reason);
    /// A key that was invalid or exhausted works again.
    void keyRecovered(int index, const QString &label);

private:
    struct Entry
    {
        ApiKey key;
        KeyStatus status;
    };
    bool isUsable(const Entry &entry, const QDateTime &now, const QString &model = QString()) const;
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
};

} // namespace keyrelay
