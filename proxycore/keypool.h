// The user's API keys, handed out round-robin, with per-key health and counters.
#pragma once

#include <QDateTime>
#include <QList>
#include <QMutex>
#include <QObject>
#include <QSet>
#include <QString>

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
    RateLimited, ///< upstream answered 429; skipped until the cool-down ends
    Invalid, ///< upstream answered 401; skipped until the keys are edited or the key is re-tested
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
    QDateTime coolingUntil;
};

/// What a request may use: one of the pool's keys, or the client's own key (pass-through mode).
struct KeyLease
{
    int index = -1; ///< index into the pool, -1 in pass-through mode
    QString secret;
    QString label; ///< never the whole key
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

private:
    struct Entry
    {
        ApiKey key;
        KeyStatus status;
    };
    bool isUsable(const Entry &entry, const QDateTime &now) const;
    QString labelFor(const Entry &entry) const;

    mutable QMutex m_mutex;
    QList<Entry> m_entries;
    int m_cursor = 0;
    quint64 m_passThroughCounter = 0;
};

} // namespace keyrelay
