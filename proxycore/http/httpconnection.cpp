#include "httpconnection.h"

#include "logging.h"
#include "openaierror.h"

#include <QTimerEvent>

namespace keyrelay {

namespace {
constexpr qint64 OutputLowWatermark = 256 * 1024;
constexpr qint64 InputWhileHandlingLimit = 1024 * 1024;
constexpr int DrainIdleMs = 5000; ///< Draining: close when the client sends nothing for this long
constexpr qint64 MaxDrainBytes = qint64(1024) * 1024 * 1024; ///< Draining: give up (reset) beyond this

} // namespace

HttpConnection::HttpConnection(QTcpSocket *socket, const HttpLimits &limits, QObject *parent)
    : ResponseSink(parent), m_socket(socket), m_limits(limits), m_parser(limits)
{
    socket->setParent(this);
    socket->setSocketOption(QAbstractSocket::LowDelayOption, 1);
    connect(socket, &QTcpSocket::readyRead, this, &HttpConnection::onReadyRead);
    connect(socket, &QTcpSocket::disconnected, this, &HttpConnection::onDisconnected);
    connect(socket, &QTcpSocket::bytesWritten, this, &HttpConnection::onBytesWritten);
    connect(socket, &QTcpSocket::errorOccurred, this, [this](QAbstractSocket::SocketError error) {
        if (error != QAbstractSocket::RemoteHostClosedError)
            qCDebug(lcServer) << "client socket error" << error;
        onDisconnected();
    });
    restartIdleTimer();
    if (socket->bytesAvailable() > 0)
        onReadyRead();
}

HttpConnection::~HttpConnection() = default;

QHostAddress HttpConnection::peerAddress() const
{
    return m_socket ? m_socket->peerAddress() : QHostAddress();
}

QHostAddress HttpConnection::localAddress() const
{
    return m_socket ? m_socket->localAddress() : QHostAddress();
}

bool HttpConnection::isOpen() const
{
    return m_socket && m_state != State::Closed && m_socket->state() == QAbstractSocket::ConnectedState;
}

bool HttpConnection::isIdle() const
{
    return m_state == State::Reading && m_input.isEmpty() && m_parser.isIdle();
}

qint64 HttpConnection::pendingOutput() const
{
    return m_socket ? m_socket->bytesToWrite() : 0;
}

void HttpConnection::restartIdleTimer()
{
    m_idleTimer.start(m_limits.keepAliveIdleMs, Qt::CoarseTimer, this);
}

void HttpConnection::timerEvent(QTimerEvent *event)
{
    if (event->timerId() == m_headTimer.timerId()) {
        m_headTimer.stop();
        if (m_state == State::Reading && m_parser.isReadingHead())
            rejectAndClose(408, "the request head was not completed in time");
        return;
    }
    if (event->timerId() == m_bodyTimer.timerId()) {
        onBodyWindowElapsed();
        return;
    }
    if (event->timerId() != m_idleTimer.timerId())
        return QObject::timerEvent(event);
    m_idleTimer.stop();
    if (m_state == State::Draining)
        startClosing();
    else if (isIdle())
        closeNow(); // an idle keep-alive connection
}

void HttpConnection::onBodyWindowElapsed()
{
    if (m_state != State::Reading || !m_parser.isReadingBody()) {
        m_bodyTimer.stop();
        return;
    }
    // A body trickling in slower than the minimum rate holds a connection for nothing: refuse it.
    const qint64 received = m_parser.bodyBytesReceived() - m_bodyWindowStart;
    if (received < m_limits.minBodyBytesPerWindow) {
        rejectAndClose(408, "the request body arrived too slowly");
        return;
    }
    m_bodyWindowStart = m_parser.bodyBytesReceived();
}

void HttpConnection::onReadyRead()
{
    if (!m_socket)
        return;
    if (m_state == State::Handling) {
        // Pipelined input: keep it (bounded) for after the current response.
        if (m_input.size() < InputWhileHandlingLimit)
            m_input.append(m_socket->read(InputWhileHandlingLimit - m_input.size()));
        return;
    }
    if (m_state == State::Draining) {
        drainInput();
        return;
    }
    if (m_state == State::Closing || m_state == State::Closed) {
        m_socket->readAll();
        return;
    }
    m_input.append(m_socket->readAll());
    processInput();
}

void HttpConnection::processInput()
{
    m_processScheduled = false;
    while (m_state == State::Reading) {
        const bool wasIdle = m_parser.isIdle();
        const HttpRequestParser::Event event = m_parser.parse(m_input);
        switch (event) {
        case HttpRequestParser::Event::NeedMore:
            if (m_parser.isReadingHead()) {
                if (m_parser.isIdle()) {
                    if (!m_idleTimer.isActive())
                        restartIdleTimer();
                } else if (wasIdle || !m_headTimer.isActive()) {
                    // The head deadline runs from its first byte and is not extended by later bytes.
                    m_idleTimer.stop();
                    if (!m_headTimer.isActive())
                        m_headTimer.start(m_limits.headTimeoutMs, Qt::CoarseTimer, this);
                }
            }
            return;
        case HttpRequestParser::Event::HeadParsed:
            m_idleTimer.stop();
            m_headTimer.stop();
            if (m_parser.isReadingBody()) {
                m_bodyWindowStart = 0;
                m_bodyTimer.start(m_limits.headTimeoutMs, Qt::CoarseTimer, this);
                const qint64 expected = m_parser.bodyRemaining() > 0 ? m_parser.bodyRemaining() : 1;
                if (m_parser.expectsContinue() && m_input.size() < expected && m_socket)
                    m_socket->write("HTTP/1.1 100 Continue\r\n\r\n");
            }
            continue;
        case HttpRequestParser::Event::Complete:
            m_bodyTimer.stop();
            dispatch();
            return;
        case HttpRequestParser::Event::Error:
            rejectAndClose(m_parser.errorStatus(), m_parser.errorMessage(), m_parser.errorDrainBytes());
            return;
        }
    }
}

void HttpConnection::dispatch()
{
    m_state = State::Handling;
    ++m_requestsServed;
    m_idleTimer.stop();
    m_headWritten = false;
    m_chunked = false;
    m_noBody = false;
    m_bodyBytesWritten = 0;
    const HttpRequest request = m_parser.takeRequest();
    m_parser.reset();
    m_closeAfterResponse = m_closeAfterResponse || !request.keepAlive;
    m_requestMinorVersion = request.minorVersion;
    m_isHeadRequest = request.method == "HEAD";
    if (m_socket)
        m_socket->setReadBufferSize(InputWhileHandlingLimit);
    Q_EMIT requestReceived(this, request);
}

QByteArray HttpConnection::reasonPhrase(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Status";
    }
}

void HttpConnection::writeHead(int status, const HeaderList &headers, qint64 contentLength)
{
    if (!m_socket || m_headWritten || m_state != State::Handling)
        return;
    m_headWritten = true;
    m_noBody = status < 200 || status == 204 || status == 304 || m_isHeadRequest;
    QByteArray head;
    head.reserve(256 + headers.size() * 48);
    head += "HTTP/1.1 " + QByteArray::number(status) + ' ' + reasonPhrase(status) + "\r\n";
    for (const auto &header : headers)
        head += header.first + ": " + header.second + "\r\n";
    if (!m_noBody) {
        if (contentLength >= 0) {
            head += "Content-Length: " + QByteArray::number(contentLength) + "\r\n";
        } else if (m_requestMinorVersion == 1) {
            head += "Transfer-Encoding: chunked\r\n";
            m_chunked = true;
        } else {
            m_closeAfterResponse = true;
        }
    } else if (contentLength >= 0 && status != 204 && status != 304 && status >= 200) {
        head += "Content-Length: " + QByteArray::number(contentLength) + "\r\n";
    }
    if (m_closeAfterResponse)
        head += "Connection: close\r\n";
    else if (m_requestMinorVersion == 0)
        head += "Connection: keep-alive\r\n";
    head += "\r\n";
    m_socket->write(head);
}

void HttpConnection::writeBody(const QByteArray &data)
{
    if (!m_socket || !m_headWritten || m_noBody || data.isEmpty() || m_state != State::Handling)
        return;
    m_bodyBytesWritten += data.size();
    if (m_chunked) {
        QByteArray framed;
        framed.reserve(data.size() + 16);
        framed += QByteArray::number(data.size(), 16) + "\r\n";
        framed += data;
        framed += "\r\n";
        m_socket->write(framed);
    } else {
        m_socket->write(data);
    }
}

void HttpConnection::finishResponse()
{
    if (m_state != State::Handling)
        return;
    if (!m_headWritten)
        writeHead(500, {}, 0);
    if (m_socket && m_chunked)
        m_socket->write("0\r\n\r\n");
    if (m_closeAfterResponse || !m_socket) {
        m_state = State::Closing;
        if (m_socket)
            m_socket->disconnectFromHost();
        else
            closeNow();
        return;
    }
    m_state = State::Reading;
    m_socket->setReadBufferSize(0);
    restartIdleTimer();
    // Pipelined requests or data that arrived during the response: handle it after this call returns.
    if (!m_processScheduled && (!m_input.isEmpty() || m_socket->bytesAvailable() > 0)) {
        m_processScheduled = true;
        QMetaObject::invokeMethod(this, &HttpConnection::onReadyRead, Qt::QueuedConnection);
    }
}

void HttpConnection::abortResponse()
{
    // closeNow() marks the connection closed before it aborts the socket: the abort's own
    // disconnected() must not read as the client going away (the exchange ends for its own reason).
    closeNow();
}

void HttpConnection::closeGracefully()
{
    if (m_state == State::Closed || m_state == State::Closing)
        return;
    // Unlike abortResponse(), this sends the bytes still buffered (the end of the last response) first.
    startClosing();
    if (m_socket && m_socket->state() == QAbstractSocket::UnconnectedState)
        onDisconnected();
}

void HttpConnection::sendResponse(int status, const HeaderList &headers, const QByteArray &body)
{
    writeHead(status, headers, body.size());
    if (!m_noBody && m_socket && !body.isEmpty()) {
        m_bodyBytesWritten += body.size();
        m_socket->write(body);
    }
    finishResponse();
}

void HttpConnection::startClosing()
{
    m_state = State::Closing;
    m_idleTimer.stop();
    m_headTimer.stop();
    m_bodyTimer.stop();
    if (m_socket)
        m_socket->disconnectFromHost(); // sends what is buffered first
    else
        closeNow();
}

void HttpConnection::drainInput()
{
    const qint64 size = m_input.size() + (m_socket ? m_socket->bytesAvailable() : 0);
    m_input.clear();
    if (m_socket)
        m_socket->readAll();
    m_drained += size;
    if (m_drained > MaxDrainBytes) {
        closeNow();
        return;
    }
    if (m_drainRemaining > 0) {
        m_drainRemaining = qMax<qint64>(0, m_drainRemaining - size);
        if (m_drainRemaining == 0) {
            startClosing();
            return;
        }
    }
    m_idleTimer.start(DrainIdleMs, Qt::CoarseTimer, this);
}

void HttpConnection::rejectAndClose(int status, const QByteArray &message, qint64 drainBytes)
{
    qCInfo(lcServer).noquote() << "rejecting request:" << status << QString::fromUtf8(message);
    m_headTimer.stop();
    m_bodyTimer.stop();
    m_state = State::Handling;
    m_closeAfterResponse = true;
    m_headWritten = false;
    m_requestMinorVersion = 1;
    m_isHeadRequest = false;
    const QByteArray body = openAiErrorBody(
        QString::fromUtf8(message), QStringLiteral("invalid_request_error"),
        status == 413 ? QStringLiteral("request_too_large") : QStringLiteral("bad_request"));
    // No CORS headers: the request was never read far enough to know whether its origin is allowed.
    const HeaderList headers { { "Content-Type", "application/json" } };
    if (drainBytes == 0 || !m_socket) {
        sendResponse(status, headers, body);
        return;
    }
    // Closing now, with the rest of an upload still arriving, would make the kernel reset the
    // connection, and a client still sending (most send the whole body before reading) would see
    // "connection reset" instead of this answer. Answer, then read and drop the body, then close.
    writeHead(status, headers, body.size());
    m_socket->write(body);
    m_state = State::Draining;
    m_drainRemaining = drainBytes;
    m_drained = 0;
    drainInput(); // part of the body may already be here, after the head
}

void HttpConnection::onBytesWritten()
{
    if (!m_socket)
        return;
    if (m_state == State::Closing && m_socket->bytesToWrite() == 0) {
        m_socket->disconnectFromHost();
        return;
    }
    if (m_state == State::Handling && m_socket->bytesToWrite() < OutputLowWatermark)
        Q_EMIT outputDrained();
}

void HttpConnection::onDisconnected()
{
    if (m_state == State::Closed)
        return;
    const bool wasHandling = m_state == State::Handling;
    closeNow();
    if (wasHandling)
        Q_EMIT clientGone();
}

void HttpConnection::closeNow()
{
    if (m_state == State::Closed)
        return;
    m_state = State::Closed;
    m_idleTimer.stop();
    m_headTimer.stop();
    m_bodyTimer.stop();
    if (m_socket && m_socket->state() != QAbstractSocket::UnconnectedState)
        m_socket->abort();
    Q_EMIT closed();
    deleteLater();
}

} // namespace keyrelay
