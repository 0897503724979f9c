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

bool isToken(const QByteArray &text)
{
    if (text.isEmpty())
        return false;
    for (const char c : text) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
            || QByteArrayView("!#$%&'*+-.^_`|~").contains(c);
        if (!ok)
            return false;
    }
    return true;
}
} // namespace

QByteArray headerValue(const HeaderList &headers, const QByteArray &name)
{
    for (const auto &header : headers) {
        if (header.first.compare(name, Qt::CaseInsensitive) == 0)
            return header.second;
    }
    return {};
}

HttpConnection::HttpConnection(QTcpSocket *socket, const HttpLimits &limits, QObject *parent)
    : QObject(parent), m_socket(socket), m_limits(limits)
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
    return m_state == State::ReadingHead && m_input.isEmpty();
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
    if (event->timerId() != m_idleTimer.timerId())
        return QObject::timerEvent(event);
    m_idleTimer.stop();
    if (m_state == State::Draining) {
        startClosing();
    } else if (m_state == State::ReadingHead && m_input.isEmpty()) {
        closeNow();
    } else if (m_state == State::ReadingHead || m_state == State::ReadingBody
               || m_state == State::ReadingChunked) {
        rejectAndClose(408, "the request was not completed in time");
    }
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
    restartIdleTimer();
    processInput();
}

void HttpConnection::processInput()
{
    m_processScheduled = false;
    while (m_state == State::ReadingHead || m_state == State::ReadingBody
           || m_state == State::ReadingChunked) {
        if (m_state == State::ReadingHead) {
            // Tolerate leading empty lines between requests (RFC 9112 2.2).
            qsizetype skip = 0;
            while (skip < m_input.size() && (m_input.at(skip) == '\r' || m_input.at(skip) == '\n'))
                ++skip;
            if (skip)
                m_input.remove(0, skip);
            qsizetype headEnd = m_input.indexOf("\r\n\r\n");
            qsizetype terminatorLength = 4;
            const qsizetype bareEnd = m_input.indexOf("\n\n");
            if (bareEnd >= 0 && (headEnd < 0 || bareEnd < headEnd)) {
                headEnd = bareEnd;
                terminatorLength = 2;
            }
            if (headEnd < 0) {
                if (m_input.size() > m_limits.maxHeadBytes)
                    rejectAndClose(431, "request headers are too large");
                return;
            }
            if (headEnd > m_limits.maxHeadBytes) {
                rejectAndClose(431, "request headers are too large");
                return;
            }
            if (!parseHead(headEnd, terminatorLength))
                return;
            continue;
        }
        if (m_state == State::ReadingBody) {
            if (m_input.size() < m_bodyRemaining)
                return;
            m_request.body = m_input.left(m_bodyRemaining);
            m_input.remove(0, m_bodyRemaining);
            m_bodyRemaining = 0;
            dispatch();
            return;
        }
        if (m_state == State::ReadingChunked) {
            if (!readChunked())
                return;
            dispatch();
            return;
        }
    }
}

bool HttpConnection::parseHead(qsizetype headEnd, qsizetype terminatorLength)
{
    const QByteArray head = m_input.left(headEnd);
    m_input.remove(0, headEnd + terminatorLength);
    QList<QByteArray> lines = head.split('\n');
    for (QByteArray &line : lines) {
        if (line.endsWith('\r'))
            line.chop(1);
    }
    const QList<QByteArray> requestLine = lines.first().split(' ');
    if (requestLine.size() != 3 || !isToken(requestLine.at(0)) || requestLine.at(1).isEmpty()) {
        rejectAndClose(400, "malformed request line");
        return false;
    }
    const QByteArray &version = requestLine.at(2);
    if (version == "HTTP/1.1") {
        m_request.minorVersion = 1;
    } else if (version == "HTTP/1.0") {
        m_request.minorVersion = 0;
    } else {
        rejectAndClose(505, "only HTTP/1.0 and HTTP/1.1 are supported");
        return false;
    }
    m_request.method = requestLine.at(0);
    m_request.target = requestLine.at(1);
    m_request.headers.clear();
    m_request.body.clear();
    for (qsizetype i = 1; i < lines.size(); ++i) {
        const QByteArray &line = lines.at(i);
        const qsizetype colon = line.indexOf(':');
        if (colon <= 0 || !isToken(line.left(colon))) {
            rejectAndClose(400, "malformed header line");
            return false;
        }
        m_request.headers.append({ line.left(colon), line.mid(colon + 1).trimmed() });
    }
    const QByteArray connection = m_request.header("Connection").toLower();
    m_request.keepAlive
        = m_request.minorVersion == 1 ? !connection.contains("close") : connection.contains("keep-alive");
    m_expectContinue = m_request.header("Expect").toLower() == "100-continue";

    const QByteArray transferEncoding = m_request.header("Transfer-Encoding").trimmed().toLower();
    const QByteArray contentLength = m_request.header("Content-Length").trimmed();
    if (!transferEncoding.isEmpty()) {
        if (transferEncoding != "chunked") {
            rejectAndClose(501, "unsupported Transfer-Encoding");
            return false;
        }
        m_state = State::ReadingChunked;
        m_bodyRemaining = -1;
    } else if (!contentLength.isEmpty()) {
        bool ok = false;
        const qint64 length = contentLength.toLongLong(&ok);
        if (!ok || length < 0) {
            rejectAndClose(400, "invalid Content-Length");
            return false;
        }
        if (length > m_limits.maxBodyBytes) {
            // A client that waits for "100 Continue" sends no body; any other one is still uploading it.
            rejectAndClose(413,
                           QByteArray("request body of ") + QByteArray::number(length)
                               + " bytes is over the limit of " + QByteArray::number(m_limits.maxBodyBytes)
                               + " bytes",
                           m_expectContinue ? 0 : length);
            return false;
        }
        m_bodyRemaining = length;
        m_state = State::ReadingBody;
    } else {
        m_bodyRemaining = 0;
        m_state = State::ReadingBody;
    }
    if (m_expectContinue && m_state != State::ReadingBody) {
        m_socket->write("HTTP/1.1 100 Continue\r\n\r\n");
    } else if (m_expectContinue && m_bodyRemaining > 0 && m_input.size() < m_bodyRemaining) {
        m_socket->write("HTTP/1.1 100 Continue\r\n\r\n");
    }
    return true;
}

bool HttpConnection::readChunked()
{
    // m_request.body accumulates; m_input holds undecoded bytes.
    while (true) {
        if (m_bodyRemaining > 0) { // inside chunk data (+ CRLF)
            if (m_input.size() < m_bodyRemaining + 2)
                return false;
            m_request.body.append(m_input.constData(), m_bodyRemaining);
            m_input.remove(0, m_bodyRemaining + 2);
            m_bodyRemaining = -1;
            continue;
        }
        if (m_bodyRemaining == -2) { // trailers after the last chunk
            const qsizetype lineEnd = m_input.indexOf('\n');
            if (lineEnd < 0)
                return false;
            const QByteArray line = m_input.left(lineEnd).trimmed();
            m_input.remove(0, lineEnd + 1);
            if (line.isEmpty()) {
                m_bodyRemaining = 0;
                return true;
            }
            continue;
        }
        const qsizetype lineEnd = m_input.indexOf('\n');
        if (lineEnd < 0) {
            if (m_input.size() > 1024)
                rejectAndClose(400, "malformed chunk size");
            return false;
        }
        QByteArray sizeText = m_input.left(lineEnd).trimmed();
        m_input.remove(0, lineEnd + 1);
        const qsizetype semicolon = sizeText.indexOf(';');
        if (semicolon >= 0)
            sizeText.truncate(semicolon);
        bool ok = false;
        const qint64 size = sizeText.trimmed().toLongLong(&ok, 16);
        if (!ok || size < 0) {
            rejectAndClose(400, "malformed chunk size");
            return false;
        }
        if (m_request.body.size() + size > m_limits.maxBodyBytes) {
            rejectAndClose(413,
                           "request body is over the limit of " + QByteArray::number(m_limits.maxBodyBytes)
                               + " bytes",
                           m_expectContinue ? 0 : -1);
            return false;
        }
        m_bodyRemaining = size == 0 ? -2 : size;
    }
}

void HttpConnection::dispatch()
{
    m_state = State::Handling;
    m_idleTimer.stop();
    m_headWritten = false;
    m_chunked = false;
    m_noBody = false;
    m_bodyBytesWritten = 0;
    m_closeAfterResponse = m_closeAfterResponse || !m_request.keepAlive;
    m_requestMinorVersion = m_request.minorVersion;
    m_isHeadRequest = m_request.method == "HEAD";
    if (m_socket)
        m_socket->setReadBufferSize(InputWhileHandlingLimit);
    const HttpRequest request = std::move(m_request);
    m_request = HttpRequest();
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
    m_state = State::ReadingHead;
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
    if (m_state == State::Closed)
        return;
    if (m_socket)
        m_socket->abort();
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
    if (m_socket && m_socket->state() != QAbstractSocket::UnconnectedState)
        m_socket->abort();
    Q_EMIT closed();
    deleteLater();
}

} // namespace keyrelay
