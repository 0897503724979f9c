// A minimal HTTP/1.1 client on a raw QTcpSocket: sends exactly the bytes a test wants and parses the
// proxy's answer (Content-Length, chunked or close-delimited), with arrival times for streaming checks.
#pragma once

#include "mockupstream.h"

#include <QElapsedTimer>
#include <QJsonObject>
#include <QObject>
#include <QTcpSocket>

namespace it {

/// "METHOD target HTTP/1.1" + Host + headers + Content-Length (when a body is given or forced).
QByteArray buildRequest(const QByteArray &method, const QByteArray &target, quint16 port,
                        const Headers &headers = {}, const QByteArray &body = QByteArray(),
                        bool forceContentLength = false);

/// The "error" object of an OpenAI-style error body; empty if the body is not a JSON object.
QJsonObject errorObject(const QByteArray &body);

class RawClient : public QObject
{
    Q_OBJECT
public:
    explicit RawClient(QObject *parent = nullptr);

    /// Connects (if not connected) to 127.0.0.1:@p port and writes @p request. Parse state is reset,
    /// so a keep-alive connection can carry several requests one after another.
    void send(quint16 port, const QByteArray &request, bool headRequest = false);
    /// Spins the event loop until the response is complete (or the connection closed). Returns finished().
    bool waitFinished(int timeoutMs = 10000);
    bool waitHead(int timeoutMs = 10000);
    void abort();
    /// A slow client: stops taking bytes from the socket (and lets the kernel buffers fill) until resumed.
    void setPaused(bool paused);

    bool headReceived() const { return m_headDone; }
    /// The whole response arrived according to its framing (or, close-delimited, the connection ended).
    bool finished() const { return m_finished; }
    /// The connection ended before the response was complete.
    bool truncated() const { return m_disconnected && !m_finished; }
    /// The kernel's receive buffer for the next connections (SO_RCVBUF): small, so that a paused client
    /// does not hide megabytes in the kernel. 0 = the system's (autotuned).
    void setReceiveBufferSize(int bytes) { m_receiveBufferSize = bytes; }
    bool disconnected() const { return m_disconnected; }

    int status() const { return m_status; }
    Headers headers() const { return m_headers; }
    QByteArray header(const QByteArray &name) const { return findHeader(m_headers, name); }
    bool hasHeader(const QByteArray &name) const { return countHeader(m_headers, name) > 0; }
    QByteArray body() const { return m_body; }
    /// Framing the proxy used: "chunked", "length", "close", or "none" (HEAD/204).
    QByteArray framing() const { return m_framing; }
    /// Milliseconds from send() until the decoded body first contained @p marker; -1 if never.
    qint64 msUntilBodyContains(const QByteArray &marker) const;
    qint64 msUntilFinished() const { return m_finishedAtMs; }
    QTcpSocket *socket() { return &m_socket; }

Q_SIGNALS:
    void headArrived();
    void bodyArrived();
    void responseFinished();
    void connectionClosed();

private:
    void reset();
    void onReadyRead();
    void parse();
    void markFinished();

    QTcpSocket m_socket;
    int m_receiveBufferSize = 0;
    QByteArray m_pending; ///< request bytes waiting for the connection
    QByteArray m_input;
    QElapsedTimer m_clock;
    bool m_headRequest = false;
    bool m_paused = false;
    bool m_headDone = false;
    bool m_finished = false;
    bool m_disconnected = false;
    int m_status = 0;
    Headers m_headers;
    QByteArray m_body;
    QByteArray m_framing;
    qint64 m_remaining
        = 0; ///< length mode: bytes left; chunked: bytes left in chunk, -1 size line, -2 trailers
    QList<QPair<qint64, qsizetype>> m_timeline; ///< (ms since send, body size)
    qint64 m_finishedAtMs = -1;
};

} // namespace it
