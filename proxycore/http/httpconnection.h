// One client connection of the local HTTP/1.1 server: parses requests, frames responses.
#pragma once

#include "httprequestparser.h"
#include "responsesink.h"

#include <QBasicTimer>
#include <QByteArray>
#include <QElapsedTimer>
#include <QList>
#include <QObject>
#include <QPair>
#include <QPointer>
#include <QTcpSocket>

namespace keyrelay {

class HttpConnection : public ResponseSink
{
    Q_OBJECT
public:
    HttpConnection(QTcpSocket *socket, const HttpLimits &limits, QObject *parent = nullptr);
    ~HttpConnection() override;

    QHostAddress peerAddress() const;
    QHostAddress localAddress() const;
    bool isOpen() const;
    /// Between requests: no request is being read or answered.
    bool isIdle() const;
    /// Idle after having served at least one request (a kept-alive connection).
    bool isKeptAliveIdle() const { return m_requestsServed > 0 && isIdle(); }
    /// Bytes handed to the socket that the client has not taken yet.
    qint64 pendingOutput() const override;

    /// Starts a response. @p contentLength -1 means the length is unknown: chunked framing for
    /// HTTP/1.1 clients, close-delimited for HTTP/1.0. No body is sent for HEAD, 1xx, 204 and 304.
    void writeHead(int status, const HeaderList &headers, qint64 contentLength = -1) override;
    void writeBody(const QByteArray &data) override;
    /// Ends the response; the connection then reads the next request (keep-alive) or closes.
    void finishResponse() override;
    /// Drops the connection in the middle of a response so the client sees an incomplete reply.
    void abortResponse() override;
    /// A whole response in one call.
    void sendResponse(int status, const HeaderList &headers, const QByteArray &body) override;
    /// Closes the connection after everything written so far has reached the client (shutdown).
    /// closed() follows once the socket is gone.
    void closeGracefully();
    /// Closes the connection once the response in progress is finished (no keep-alive).
    void closeAfterResponse() { m_closeAfterResponse = true; }

    bool headWritten() const { return m_headWritten; }
    qint64 bodyBytesWritten() const override { return m_bodyBytesWritten; }

    static QByteArray reasonPhrase(int status);

Q_SIGNALS:
    /// A complete request arrived. No further request is read until the response is finished.
    void requestReceived(keyrelay::HttpConnection *connection, const keyrelay::HttpRequest &request);
    /// The connection is closed and the object will be deleted.
    void closed();

protected:
    void timerEvent(QTimerEvent *event) override;

private:
    /// Draining: an error answer is sent and the rest of the request body is read and dropped, so that
    /// closing does not reset the connection before the client has read the answer.
    enum class State { Reading, Handling, Draining, Closing, Closed };

    void onReadyRead();
    void processInput();
    void dispatch();
    /// @p drainBytes: request body bytes still to come that are read and dropped before closing
    /// (-1: unknown, drop until the client stops sending; 0: close at once).
    void rejectAndClose(int status, const QByteArray &message, qint64 drainBytes = 0);
    void drainInput();
    void startClosing();
    void closeNow();
    void onDisconnected();
    void onBytesWritten();
    void restartIdleTimer();
    void onBodyWindowElapsed();

    QPointer<QTcpSocket> m_socket;
    HttpLimits m_limits;
    State m_state = State::Reading;
    QByteArray m_input;
    HttpRequestParser m_parser;
    QBasicTimer m_idleTimer; ///< idle keep-alive connection, or Draining: client silent
    QBasicTimer m_headTimer; ///< the head must be complete headTimeoutMs after its first byte
    QBasicTimer m_bodyTimer; ///< each window must bring minBodyBytesPerWindow body bytes
    qint64 m_bodyWindowStart = 0; ///< body bytes received when the current window began

    bool m_headWritten = false;
    bool m_chunked = false;
    bool m_noBody = false;
    bool m_closeAfterResponse = false;
    bool m_isHeadRequest = false;
    int m_requestMinorVersion = 1;
    qint64 m_bodyBytesWritten = 0;
    int m_requestsServed = 0;
    bool m_processScheduled = false;
    qint64 m_drainRemaining = 0; ///< Draining: body bytes still expected, -1 unknown
    qint64 m_drained = 0;
};

} // namespace keyrelay
