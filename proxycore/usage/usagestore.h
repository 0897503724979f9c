// Token usage per day, provider, key and model: kept in SQLite, written in batches on a thread of its own.
#pragma once

#include "requestrecord.h"

#include <QDate>
#include <QDateTime>
#include <QHash>
#include <QList>
#include <QMutex>
#include <QObject>
#include <QString>
#include <QThread>

#include <functional>

class QTimer;

namespace keyrelay {

/// One request's usage, as the proxy reports it.
struct UsageEvent
{
    QString keyId; ///< KeyPool::keyId() of the key used; never the key itself
    QString keyLabel; ///< label or masked form at the time; optional
    QString model;
    qint64 promptTokens = -1; ///< -1 when unknown (counted as 0)
    qint64 completionTokens = -1;
    qint64 totalTokens = -1; ///< -1: prompt + completion
    /// The provider id that served the request; "" is booked as UsageStore::DefaultProvider. After the
    /// tokens, so that { keyId, label, model, prompt, completion, total } still initialises an event (the
    /// default member initialiser keeps -Wmissing-field-initializers quiet there).
    QString provider = {};
    /// A provider's try that failed before the first byte, after which the request went on to the next
    /// provider (RequestRecord::fellBack). It is not counted as a request: the client made one request,
    /// and the try that answered it counts it. Its tokens (normally none) are still booked; without
    /// tokens the event books nothing at all.
    bool fellBack = false;

    /// The usage part of a finished request (RequestRecord::provider, keyId, keyLabel, model, tokens and
    /// fellBack); an empty provider becomes UsageStore::DefaultProvider.
    static UsageEvent fromRecord(const RequestRecord &record);
};

/// Summed usage of one group: a provider, a key (of one provider) or a model, on one day or over the
/// store's whole life.
struct UsageRow
{
    QDate day; ///< invalid in totals over the store's whole life
    QString provider; ///< the provider id when grouped by provider or key; empty when grouped by model
    QString keyId; ///< empty when grouped by model or provider
    QString keyLabel; ///< the latest label recorded for keyId; empty when grouped by model or provider
    QString model; ///< empty when grouped by key or provider
    qint64 requests = 0;
    qint64 promptTokens = 0;
    qint64 completionTokens = 0;
    qint64 totalTokens = 0;

    bool operator==(const UsageRow &other) const;
    bool operator!=(const UsageRow &other) const { return !(*this == other); }
};

/// Daily usage totals in an SQLite file, keyed by (local day, provider id, key id, model).
///
/// record() is cheap and thread-safe: it adds the event to an in-memory batch. The batch is written
/// in one transaction on the store's own thread, which alone owns the database connection, every
/// flushInterval ms or as soon as it holds flushThreshold events, and when the store is destroyed.
/// Queries are thread-safe and return by value; they include events not written yet.
/// A damaged database (not SQLite, truncated, unknown schema) is renamed to "<file>.damaged-<time>"
/// and a new one started; problem() then says so. Without a usable file the figures live in memory.
/// A file of schema 1 (before providers: keyed by day, key and model) is upgraded in place, in one
/// transaction, its rows booked to DefaultProvider; if the upgrade fails the file is left as it was and
/// the figures live in memory until a later write tries again.
class UsageStore : public QObject
{
    Q_OBJECT
public:
    using Clock = std::function<QDateTime()>;
    /// Key: a row per (provider, key id); a key id used by two providers gives two rows.
    /// Model: a row per model, summed over providers and keys. Provider: a row per provider.
    enum class GroupBy { Key, Model, Provider };
    Q_ENUM(GroupBy)

    static constexpr int SchemaVersion = 2;
    /// The provider of a configuration without providers (ProviderConfig::DefaultId), and of every
    /// figure from schema 1.
    static constexpr const char *DefaultProvider = "default";
    static constexpr int DefaultFlushIntervalMs = 2000;
    static constexpr int DefaultFlushThreshold = 200;

    /// Opens (or creates) the database at @p path. @p clock gives the time for the day boundary
    /// (in local time); the default is QDateTime::currentDateTimeUtc.
    explicit UsageStore(const QString &path, Clock clock = {}, QObject *parent = nullptr);
    /// Writes what is pending, then closes the database.
    ~UsageStore() override;

    /// "usage.sqlite" in the folder of @p settingsFile.
    static QString pathNextTo(const QString &settingsFile);

    /// Thread-safe, never blocks on the database.
    void record(const UsageEvent &event);
    /// Writes the pending batch now and waits for it. Returns false with @p error when it could not
    /// be written (the events stay pending and are retried).
    bool flush(QString *error = nullptr);
    /// Events recorded but not written yet.
    int pendingEvents() const;
    /// When to write a batch: after @p intervalMs, or at once when it holds @p threshold events.
    void setFlushPolicy(int intervalMs, int threshold);

    QString path() const { return m_path; }
    /// Whether the database file is open (otherwise the figures are kept in memory only).
    bool isOpen() const;
    /// A user-facing description of the last problem with the database; empty when there is none.
    QString problem() const;
    /// When this database was created ("since the store began").
    QDateTime createdAt() const;
    /// Today according to the clock, in local time.
    QDate today() const;

    /// Usage per day and key (or model, or provider) for the @p days days up to and including today,
    /// ordered by day, then key label (or model, or provider id), then provider id. Days and groups
    /// without requests are left out.
    QList<UsageRow> daily(int days, GroupBy by) const;
    /// Usage per key (or model, or provider) on @p day.
    QList<UsageRow> forDay(const QDate &day, GroupBy by) const;
    /// Usage per key (or model, or provider) since the store began; day is invalid.
    QList<UsageRow> totals(GroupBy by) const;
    /// Everything used today in one row (day = today, no provider, key or model).
    UsageRow todayTotal() const;

Q_SIGNALS:
    /// A batch was written. Emitted in the thread the store lives in.
    void flushed();
    /// problem() changed; @p problem is empty when the database works again.
    void problemChanged(const QString &problem);

private:
    struct PendingKey
    {
        QDate day;
        QString provider;
        QString keyId;
        QString model;
        bool operator==(const PendingKey &other) const
        {
            return day == other.day && provider == other.provider && keyId == other.keyId
                && model == other.model;
        }
    };
    friend size_t qHash(const PendingKey &key, size_t seed) noexcept
    {
        return qHashMulti(seed, key.day, key.provider, key.keyId, key.model);
    }
    struct PendingValue
    {
        QString keyLabel;
        qint64 requests = 0;
        qint64 promptTokens = 0;
        qint64 completionTokens = 0;
        qint64 totalTokens = 0;
    };
    using Batch = QHash<PendingKey, PendingValue>;
    enum class Schema { Fresh, Current, Version1, Damaged };

    // Everything below runs on m_thread only.
    template<typename Fn> void runOnThread(Fn &&fn) const;
    bool ensureOpen();
    Schema checkSchema(QString *reason);
    bool createSchema(QString *error);
    /// Schema 1 to 2 in one transaction; on failure nothing has changed. @p corrupt: the file is bad.
    bool migrateFromVersion1(QString *error, bool *corrupt);
    void closeDatabase();
    bool setAside(const QString &reason);
    bool writeBatch(const Batch &batch, QString *error, bool *corrupt);
    bool flushOnThread(QString *error);
    QList<UsageRow> query(const QDate &from, const QDate &to, bool perDay, GroupBy by) const;
    /// @p lasting: stays until the store is destroyed (a file set aside); otherwise cleared as soon
    /// as the database works again.
    void setProblem(const QString &problem, bool lasting = false);
    void clearPassingProblem();

    static void merge(Batch *into, const Batch &from);
    /// The clock's time; the system's when the clock has none.
    QDateTime now() const;
    /// The local date at @p time; called with m_mutex held.
    QDate dayAtLocked(const QDateTime &time);

    const QString m_path;
    const QString m_connectionName;
    const Clock m_clock;
    QThread m_thread;
    QObject *m_context; ///< lives on m_thread; the target of work sent there
    QTimer *m_timer; ///< on m_thread

    mutable QMutex m_mutex; ///< guards what follows; written on m_thread except the batch
    bool m_open = false;
    QDateTime m_createdAt;
    Batch m_pending;
    int m_pendingEvents = 0;
    int m_threshold = DefaultFlushThreshold;
    bool m_flushQueued = false;
    bool m_failing = false; ///< the last write failed: retry on the timer only, not per event
    QString m_problem;
    bool m_problemLasting = false;
    struct DayCache
    {
        qint64 startMs = 0;
        qint64 endMs = 0; ///< empty range: nothing cached
        QDate day;
    } m_dayCache;
};

} // namespace keyrelay
