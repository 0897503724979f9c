// An in-process fake upstream for the integration tests, written directly on QTcpServer/QTcpSocket so
// that it shares no code with the proxy under test. It records every request and answers as the test's
// handler says: fixed, chunked, timed SSE events, hold forever, cut off, delayed.
#pragma once

#include <QByteArray>
#include <QElapsedTimer>
#include <QHash>
#include <QList>
#include <QObject>
#include <QPair>
#include <QUrl>

#include <functional>

class QTcpServer;
class QTcpSocket;

namespace it {

using Headers = QList<QPair<QByteArray, QByteArray>>;

inline QPair<QByteArray, QByteArray> makeHeader(const QByteArray &name, const QByteArray &value)
{
    return qMakePair(name, value);
}

/// First value of header @p name (case-insensitive), or a null QByteArray.
QByteArray findHeader(const Headers &headers, const QByteArray &name);
/// How many headers are named @p name (case-insensitive).
int countHeader(const Headers &headers, const QByteArray &name);

struct RecordedRequest
{
    int connectionId = 0; ///< which upstream TCP connection carried it (keep-alive shows as reuse)
    QByteArray method;
    QByteArray target; ///< path + query, as on the request line
    QByteArray version;
    Headers headers;
    QByteArray body; ///< de-chunked
    qint64 receivedAtMs = 0; ///< on the mock's clock

    QByteArray header(const QByteArray &name) const { return findHeader(headers, name); }
    bool hasHeader(const QByteArray &name) const { return countHeader(headers, name) > 0; }
};

struct MockResponse
{
    enum class Mode {
        Fixed, ///< status, headers, Content-Length, body
        Chunked, ///< Transfer-Encoding: chunked, body split into chunkSize pieces
        CloseDelimited, ///< no length: the body ends with the connection (last bytes sent with the FIN)
        Events, ///< chunked; each event written at its time offset (ms after the head)
        Hold, ///< read the request, never answer
        CutOff, ///< Content-Length of the whole body, then only cutAfterBytes bytes and a close
    };

    Mode mode = Mode::Fixed;
    int status = 200;
    Headers headers; ///< sent as given (framing headers are added by the mode)
    QByteArray body;
    int delayMs = 0; ///< wait this long before sending anything
    int chunkSize = 4096; ///< Chunked mode
    QList<QPair<int, QByteArray>> events; ///< Events mode: (ms after head, bytes)
    bool endStream = true; ///< Events mode: send the last chunk after the last event; false holds the stream
    qint64 cutAfterBytes = 0; ///< CutOff mode
    bool closeAfter = false; ///< Fixed/Chunked: "Connection: close" and close after the response

    static MockResponse fixed(int status, const QByteArray &body, const Headers &headers = {})
    {
        MockResponse r;
        r.status = status;
        r.body = body;
        r.headers = headers;
        return r;
    }
    static MockResponse json(int status, const QByteArray &body)
    {
        return fixed(status, body, { { "Content-Type", "application/json" } });
    }
    /// An SSE stream: event i is sent at offsetsMs[i].
    static MockResponse sse(const QList<QPair<int, QByteArray>> &events, bool end = true)
    {
        MockResponse r;
        r.mode = Mode::Events;
        r.headers = { { "Content-Type", "text/event-stream" }, { "Cache-Control", "no-cache" } };
        r.events = events;
        r.endStream = end;
        return r;
    }
    static MockResponse hold()
    {
        MockResponse r;
        r.mode = Mode::Hold;
        return r;
    }
};

using MockHandler = std::function<MockResponse(const RecordedRequest &)>;

class MockConnection;

class MockUpstream : public QObject
{
    Q_OBJECT
public:
    explicit MockUpstream(QObject *parent = nullptr);
    ~MockUpstream() override;

    /// Listens on 127.0.0.1, port 0 unless given.
    bool listen(quint16 port = 0);
    quint16 port() const;
    /// "http://127.0.0.1:PORT" + @p path
    QUrl url(const QString &path = QString()) const;

    /// Decides every answer. The default answers 200 "ok" (text/plain).
    void setHandler(const MockHandler &handler) { m_handler = handler; }

    QList<RecordedRequest> requests() const { return m_requests; }
    int requestCount() const { return int(m_requests.size()); }
    RecordedRequest lastRequest() const
    {
        return m_requests.isEmpty() ? RecordedRequest() : m_requests.last();
    }
    void clearRequests() { m_requests.clear(); }

    int openConnections() const { return int(m_connections.size()); }
    int totalConnections() const { return m_nextConnectionId - 1; }
    /// Ids of connections that have been closed (by either side).
    QList<int> closedConnections() const { return m_closed; }
    bool isConnectionOpen(int connectionId) const;
    /// Responses being sent right now (head sent or pending, not finished), and the most ever at once.
    int activeResponses() const { return m_active; }
    int peakActiveResponses() const { return m_peakActive; }
    /// Response bytes the mock's sockets handed to the kernel so far (what the peer could read): stops
    /// growing while the peer reads nothing and every buffer on the way is full.
    qint64 bytesSent() const { return m_bytesSent; }
    /// Closes every connection to the mock (listener stays).
    void dropAllConnections();

Q_SIGNALS:
    void requestReceived(int index);
    void clientDisconnected(int connectionId);
    void responseFinished(int connectionId);

private:
    friend class MockConnection;
    void onNewConnection();
    void onRequest(MockConnection *connection, RecordedRequest request);
    void onResponseStarted();
    void onResponseDone(int connectionId);
    void onConnectionClosed(MockConnection *connection, int id, bool wasResponding);

    QTcpServer *m_server;
    MockHandler m_handler;
    QList<RecordedRequest> m_requests;
    QHash<int, MockConnection *> m_connections;
    QList<int> m_closed;
    int m_nextConnectionId = 1;
    int m_active = 0;
    int m_peakActive = 0;
    qint64 m_bytesSent = 0;
    QElapsedTimer m_clock;
};

} // namespace it
