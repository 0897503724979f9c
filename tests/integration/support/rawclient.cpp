#include "rawclient.h"

#include <QJsonDocument>
#include <QTest>

namespace it {

QJsonObject errorObject(const QByteArray &body)
{
    QJsonParseError parseError {};
    const QJsonDocument document = QJsonDocument::fromJson(body, &parseError);
    if (parseError.error != QJsonParseError::NoError || !document.isObject())
        return {};
    return document.object().value(QStringLiteral("error")).toObject();
}

QByteArray buildRequest(const QByteArray &method, const QByteArray &target, quint16 port,
                        const Headers &headers, const QByteArray &body, bool forceContentLength)
{
    QByteArray out = method + ' ' + target + " HTTP/1.1\r\n";
    if (countHeader(headers, "Host") == 0)
        out += "Host: 127.0.0.1:" + QByteArray::number(port) + "\r\n";
    for (const auto &header : headers)
        out += header.first + ": " + header.second + "\r\n";
    if ((!body.isEmpty() || forceContentLength) && countHeader(headers, "Content-Length") == 0
        && countHeader(headers, "Transfer-Encoding") == 0) {
        out += "Content-Length: " + QByteArray::number(body.size()) + "\r\n";
    }
    return out + "\r\n" + body;
}

RawClient::RawClient(QObject *parent) : QObject(parent)
{
    connect(&m_socket, &QTcpSocket::connected, this, [this] {
        if (m_receiveBufferSize > 0)
            m_socket.setSocketOption(QAbstractSocket::ReceiveBufferSizeSocketOption, m_receiveBufferSize);
        if (!m_pending.isEmpty()) {
            m_socket.write(m_pending);
            m_pending.clear();
        }
    });
    connect(&m_socket, &QTcpSocket::readyRead, this, &RawClient::onReadyRead);
    connect(&m_socket, &QTcpSocket::disconnected, this, [this] {
        onReadyRead();
        m_disconnected = true;
        if (m_headDone && !m_finished && m_framing == "close")
            markFinished();
        Q_EMIT connectionClosed();
    });
    connect(&m_socket, &QTcpSocket::errorOccurred, this, [this](QAbstractSocket::SocketError error) {
        if (error == QAbstractSocket::RemoteHostClosedError)
            return; // disconnected() follows
        onReadyRead();
        m_disconnected = true;
        if (m_headDone && !m_finished && m_framing == "close")
            markFinished();
        Q_EMIT connectionClosed();
    });
}

void RawClient::reset()
{
    m_headDone = false;
    m_finished = false;
    m_status = 0;
    m_headers.clear();
    m_body.clear();
    m_framing.clear();
    m_remaining = 0;
    m_timeline.clear();
    m_finishedAtMs = -1;
}

void RawClient::send(quint16 port, const QByteArray &request, bool headRequest)
{
    reset();
    m_headRequest = headRequest;
    m_clock.start();
    if (m_socket.state() == QAbstractSocket::ConnectedState) {
        m_socket.write(request);
        if (!m_input.isEmpty())
            parse();
        return;
    }
    m_disconnected = false;
    m_input.clear();
    m_pending = request;
    m_socket.connectToHost(QHostAddress(QHostAddress::LocalHost), port);
}

bool RawClient::waitFinished(int timeoutMs)
{
    [[maybe_unused]] const bool done
        = QTest::qWaitFor([this] { return m_finished || m_disconnected; }, timeoutMs);
    return m_finished;
}

bool RawClient::waitHead(int timeoutMs)
{
    [[maybe_unused]] const bool done
        = QTest::qWaitFor([this] { return m_headDone || m_disconnected; }, timeoutMs);
    return m_headDone;
}

void RawClient::abort()
{
    m_socket.abort();
}

qint64 RawClient::msUntilBodyContains(const QByteArray &marker) const
{
    const qsizetype at = m_body.indexOf(marker);
    if (at < 0)
        return -1;
    const qsizetype needed = at + marker.size();
    for (const auto &point : m_timeline) {
        if (point.second >= needed)
            return point.first;
    }
    return -1;
}

void RawClient::setPaused(bool paused)
{
    m_paused = paused;
    m_socket.setReadBufferSize(paused ? 16 * 1024 : 0);
    if (!paused)
        QMetaObject::invokeMethod(this, &RawClient::onReadyRead, Qt::QueuedConnection);
}

void RawClient::onReadyRead()
{
    if (m_paused)
        return;
    if (m_socket.bytesAvailable() > 0)
        m_input.append(m_socket.readAll());
    parse();
}

void RawClient::markFinished()
{
    if (m_finished)
        return;
    m_finished = true;
    m_finishedAtMs = m_clock.elapsed();
    Q_EMIT responseFinished();
}

void RawClient::parse()
{
    if (m_finished)
        return;
    const qsizetype before = m_body.size();
    while (!m_headDone) {
        const qsizetype end = m_input.indexOf("\r\n\r\n");
        if (end < 0)
            return;
        const QByteArray head = m_input.left(end);
        m_input.remove(0, end + 4);
        const QList<QByteArray> lines = head.split('\n');
        const QList<QByteArray> statusLine = lines.first().trimmed().split(' ');
        const int status = statusLine.value(1).toInt();
        if (status >= 100 && status < 200)
            continue; // 100 Continue: the real head follows
        m_status = status;
        for (qsizetype i = 1; i < lines.size(); ++i) {
            const QByteArray line = lines.at(i).trimmed();
            const qsizetype colon = line.indexOf(':');
            if (colon > 0)
                m_headers.append({ line.left(colon).trimmed(), line.mid(colon + 1).trimmed() });
        }
        m_headDone = true;
        if (m_headRequest || status == 204 || status == 304) {
            m_framing = "none";
        } else if (header("Transfer-Encoding").toLower().contains("chunked")) {
            m_framing = "chunked";
            m_remaining = -1;
        } else if (hasHeader("Content-Length")) {
            m_framing = "length";
            m_remaining = header("Content-Length").toLongLong();
        } else {
            m_framing = "close";
        }
        Q_EMIT headArrived();
        if (m_framing == "none") {
            markFinished();
            return;
        }
    }
    if (m_framing == "length") {
        const qint64 take = qMin<qint64>(m_remaining, m_input.size());
        m_body.append(m_input.left(take));
        m_input.remove(0, take);
        m_remaining -= take;
        if (m_remaining == 0)
            markFinished();
    } else if (m_framing == "close") {
        m_body.append(m_input);
        m_input.clear();
    } else if (m_framing == "chunked") {
        while (!m_finished) {
            if (m_remaining > 0) {
                if (m_input.size() < m_remaining + 2) {
                    // take what is there so partial chunks show up in the timeline
                    const qint64 take = qMin<qint64>(m_remaining, m_input.size());
                    m_body.append(m_input.left(take));
                    m_input.remove(0, take);
                    m_remaining -= take;
                    if (m_remaining > 0)
                        break;
                    continue;
                }
                m_body.append(m_input.left(m_remaining));
                m_input.remove(0, m_remaining);
                m_remaining = 0;
                continue;
            }
            if (m_remaining == 0) { // CRLF after chunk data
                if (m_input.size() < 2)
                    break;
                m_input.remove(0, 2);
                m_remaining = -1;
                continue;
            }
            const qsizetype lineEnd = m_input.indexOf("\r\n");
            if (lineEnd < 0)
                break;
            const QByteArray line = m_input.left(lineEnd);
            m_input.remove(0, lineEnd + 2);
            if (m_remaining == -2) {
                if (line.isEmpty())
                    markFinished();
                continue;
            }
            const qint64 size = line.split(';').first().trimmed().toLongLong(nullptr, 16);
            m_remaining = size == 0 ? -2 : size;
        }
    }
    if (m_body.size() != before) {
        m_timeline.append({ m_clock.elapsed(), m_body.size() });
        Q_EMIT bodyArrived();
    }
}

} // namespace it
