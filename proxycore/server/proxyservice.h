// The proxy on its own thread, driven from the GUI or the headless main thread.
#pragma once

#include "proxyconfig.h"
#include "requestrecord.h"
#include "secretredactor.h"

#include <QBasicTimer>
#include <QHash>
#include <QList>
#include <QMutex>
#include <QObject>
#include <QThread>

namespace keyrelay {

class KeyPool;
class UsageStore;
class ProxyServer;

/// Owns the proxy thread. Methods are called from the thread that created the service; results come
/// back as signals in that thread, so a UI only ever receives events.
class ProxyService : public QObject
{
    Q_OBJECT
public:
    enum class State { Stopped, Running, Failed };
    Q_ENUM(State)

    explicit ProxyService(KeyPool *keys, QObject *parent = nullptr);
    ~ProxyService() override;

    /// Starts (or restarts) listening with @p config. Returns false with a user-facing message on
    /// failure (port in use, bad address...); state() is then Failed and failed() is emitted — except when
    /// the proxy was running: then it keeps serving on its old address with its old settings, stays
    /// Running, and the message says so. Emits started() on success.
    bool start(const ProxyConfig &config, QString *error = nullptr);
    /// Stops listening; requests in flight are cut off.
    void stop();
    /// Applies new settings: restarts the listener only when the listen address or port changed.
    bool applyConfig(const ProxyConfig &config, QString *error = nullptr);
    /// Stops listening and lets requests in flight finish for up to @p graceMs; emits shutdownComplete().
    void shutdown(int graceMs);

    State state() const { return m_state; }
    QString lastError() const { return m_lastError; }
    quint16 port() const { return m_port; }
    QString endpointUrl() const;
    /// The API base URL for clients, e.g. "http://127.0.0.1:9000/v1".
    QString clientBaseUrl() const { return m_config.clientBaseUrl(m_port); }
    ProxyConfig config() const { return m_config; }
    int activeRequests() const;
    /// Where every finished request with a pool key is booked (in the proxy thread, at once) and whose
    /// totals GET /_keyrelay/status reports (thread-safe; may be null).
    void setUsageStore(UsageStore *usage);
    /// The key pools of providers with keys of their own, by provider id (not owned; see
    /// ProxyServer::setProviderPools). Applies from the next start() or applyConfig().
    void setProviderPools(const QHash<QString, KeyPool *> &pools);
    /// Masks keys, the client token and the proxy password in any text (thread-safe).
    const SecretRedactor &redactor() const { return m_redactor; }

Q_SIGNALS:
    void started(const QString &endpointUrl);
    void stopped();
    void failed(const QString &error);
    void stateChanged(keyrelay::ProxyService::State state);
    void requestFinished(const keyrelay::RequestRecord &record);
    void shutdownComplete();

protected:
    void timerEvent(QTimerEvent *event) override;

private:
    /// How long a batch of request records collects before it is delivered (log, usage, stdout).
    static constexpr int RecordBatchMs = 25;
    /// Emits requestFinished() for every record the proxy thread has queued.
    void deliverRecords();
    void setState(State state);

    SecretRedactor m_redactor;
    QBasicTimer m_deliveryTimer;
    QMutex m_recordsMutex;
    QList<RequestRecord> m_records; ///< finished in the proxy thread, not yet delivered here
    QThread m_thread;
    ProxyServer *m_server = nullptr;
    ProxyConfig m_config;
    State m_state = State::Stopped;
    QString m_lastError;
    quint16 m_port = 0;
};

} // namespace keyrelay
