// The upstream HTTP client: libcurl's multi interface driven by the proxy thread's Qt event loop (one
// QSocketNotifier pair per socket curl uses, one single-shot QTimer), no extra thread, no blocking call.
// Each request is an UpstreamTransfer with the signal shape of the design card: headers, data, finished.
#pragma once

#include "responsehead.h"
#include "upstreamcall.h"

#include <QByteArray>
#include <QDateTime>
#include <QHash>
#include <QNetworkProxy>
#include <QObject>
#include <QPointer>
#include <QSet>
#include <QStringList>
#include <QTimer>
#include <QUrl>

#include <deque>
#include <memory>

typedef void CURLM;
typedef void CURL;
struct curl_slist;
struct x509_store_ctx_st; // OpenSSL's X509_STORE_CTX
class QSocketNotifier;

namespace keyrelay {

class UpstreamTransfer;

/// One libcurl multi handle and the sockets and timer that drive it. Lives in one thread (the proxy's);
/// every UpstreamTransfer it starts lives there too.
class CurlEngine : public QObject, public UpstreamClient
{
    Q_OBJECT
public:
    explicit CurlEngine(QObject *parent = nullptr);
    ~CurlEngine() override;

    /// Starts @p spec; the transfer is owned by @p parent (or by the caller, when null) and reports through
    /// its signals, never from inside this call.
    UpstreamTransfer *start(const UpstreamRequestSpec &spec, QObject *parent = nullptr);
    UpstreamCall *startCall(const UpstreamRequestSpec &spec, QObject *parent = nullptr) override;

    /// Upstream connections open at once (CURLMOPT_MAX_TOTAL_CONNECTIONS); transfers past it wait.
    void setMaxConnections(int connections);
    /// Connections to one host at once (CURLMOPT_MAX_HOST_CONNECTIONS; 0 = no limit); transfers past it wait
    /// for a free HTTP/2 stream or connection.
    void setMaxConnectionsPerHost(int connections);
    /// HTTP/2 streams on one connection at most (CURLMOPT_MAX_CONCURRENT_STREAMS; the server's own limit
    /// applies when lower).
    void setMaxStreamsPerConnection(int streams);

    int transfersInFlight() const { return int(m_transfers.size()); }
    /// Sockets curl watches right now (for tests: an idle engine watches none of a finished transfer's).
    int watchedSockets() const { return int(m_sockets.size()); }

private:
    friend class UpstreamTransfer;
    struct Socket
    {
        QSocketNotifier *read = nullptr;
        QSocketNotifier *write = nullptr;
    };

    static int socketCallback(CURL *easy, int fd, int what, void *engine, void *socketData);
    static int timerCallback(CURLM *multi, long timeoutMs, void *engine);
    void watch(int fd, int what);
    /// curl_multi_socket_action for @p fd (or the timeout), then finished transfers and pending signals.
    void drive(int fd, int eventMask);
    void scheduleDelivery();
    void readFinished();
    void deliverPending();
    void remove(UpstreamTransfer *transfer);
    void resume(UpstreamTransfer *transfer);

    CURLM *m_multi = nullptr;
    QTimer *m_timer; ///< a child, so that it moves with the engine to the thread it runs in
    QHash<int, Socket> m_sockets;
    QSet<UpstreamTransfer *> m_transfers;
    QSet<UpstreamTransfer *> m_pending; ///< have news for their owner (headers, data, the end)
    bool m_deliveryScheduled = false;
};

/// One upstream request in flight. Signals come from the event loop, never from inside a libcurl call.
class UpstreamTransfer : public UpstreamCall
{
    Q_OBJECT
public:
    ~UpstreamTransfer() override;

    int status() const override { return m_head.isComplete() ? m_head.status() : 0; }
    HeaderList headers() const override { return m_head.headers(); }
    /// "1.1" or "2".
    QByteArray httpVersion() const override { return m_head.version(); }

    qint64 bytesAvailable() const override { return m_buffered; }
    /// Takes up to @p maxBytes of the body; the upstream is resumed once the buffer has room again.
    QByteArray read(qint64 maxBytes = -1) override;
    /// Whether curl is holding the upstream back because nobody read (back-pressure).
    bool isPaused() const override { return m_paused; }
    /// Body bytes received from curl so far (read or not).
    qint64 bytesReceived() const { return m_received; }

    bool isFinished() const override { return m_finished; }
    UpstreamResult result() const override { return m_result; }
    /// Ends the transfer now; finished() follows (with aborted set) unless it already finished.
    void abort() override;

private:
    friend class CurlEngine;
    UpstreamTransfer(CurlEngine *engine, const UpstreamRequestSpec &spec, QObject *parent);
    bool setUp(QString *error);
    static size_t headerCallback(char *data, size_t size, size_t count, void *transfer);
    static int sslContextCallback(CURL *easy, void *sslContext, void *transfer);
    static int verifyCallback(int preverifyOk, x509_store_ctx_st *store);
    static size_t writeCallback(char *data, size_t size, size_t count, void *transfer);
    size_t onHeaderLine(const char *data, size_t length);
    size_t onData(const char *data, size_t length);
    void complete(int curlCode);
    /// Emits what happened since the last call, in order: headers, data, the end.
    void deliver();

    QPointer<CurlEngine> m_engine;
    UpstreamRequestSpec m_spec;
    CURL *m_easy = nullptr;
    curl_slist *m_headerList = nullptr;
    char m_errorBuffer[256] = {};
    ResponseHeadReader m_head;
    bool m_headersDelivered = false;
    std::deque<QByteArray> m_pieces; ///< body bytes received and not read, as curl handed them over
    qint64 m_buffered = 0; ///< their total
    qint64 m_received = 0;
    bool m_paused = false;
    bool m_resumeQueued = false;
    bool m_dataPending = false;
    bool m_finished = false;
    bool m_finishDelivered = false;
    UpstreamResult m_result;
};

} // namespace keyrelay
