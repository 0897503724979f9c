#include "mockupstream.h"

#include <QPointer>
#include <QTcpServer>
#include <QTcpSocket>
#include <QTimer>

namespace it {

QByteArray findHeader(const Headers &headers, const QByteArray &name)
{
    for (const auto &header : headers) {
        if (header.first.compare(name, Qt::CaseInsensitive) == 0)
            return header.second;
    }
    return {};
}

int countHeader(const Headers &headers, const QByteArray &name)
{
    int count = 0;
    for (const auto &header : headers) {
        if (header.first.compare(name, Qt::CaseInsensitive) == 0)
            ++count;
    }
    return count;
}

namespace {
QByteArray reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Mock";
    }
}

QByteArray chunk(const QByteArray &data)
{
    return QByteArray::number(data.size(), 16) + "\r\n" + data + "\r\n";
}
} // namespace

/// One accepted connection: parses requests (keep-alive, Content-Length or chunked bodies) and plays
/// the handler's answers. Plain QObject: it talks to its MockUpstream directly.
class MockConnection : public QObject
{
public:
    MockConnection(MockUpstream *owner, QTcpSocket *socket, int id)
        : QObject(owner), m_owner(owner), m_socket(socket), m_id(id)
    {
        socket->setParent(this);
        socket->setSocketOption(QAbstractSocket::LowDelayOption, 1);
        connect(socket, &QTcpSocket::readyRead, this, [this] { onReadyRead(); });
        connect(socket, &QTcpSocket::disconnected, this, [this] { onClosed(); });
        connect(socket, &QTcpSocket::errorOccurred, this,
                [this](QAbstractSocket::SocketError) { onClosed(); });
        connect(socket, &QTcpSocket::bytesWritten, this, [this](qint64 bytes) {
            m_owner->m_bytesSent += bytes;
            if (m_closeWhenFlushed && m_socket && m_socket->bytesToWrite() == 0)
                m_socket->disconnectFromHost();
        });
    }

    int id() const { return m_id; }
    void drop()
    {
        if (m_socket)
            m_socket->abort();
        onClosed();
    }

private:
    enum class State { Head, Body, Chunked, Responding, Closed };

    void onReadyRead()
    {
        if (!m_socket)
            return;
        m_input.append(m_socket->readAll());
        parse();
    }

    void parse()
    {
        while (m_state == State::Head || m_state == State::Body || m_state == State::Chunked) {
            if (m_state == State::Head) {
                const qsizetype end = m_input.indexOf("\r\n\r\n");
                if (end < 0)
                    return;
                const QByteArray head = m_input.left(end);
                m_input.remove(0, end + 4);
                const QList<QByteArray> lines = head.split('\n');
                const QList<QByteArray> requestLine = lines.first().trimmed().split(' ');
                m_request = RecordedRequest();
                m_request.connectionId = m_id;
                m_request.method = requestLine.value(0);
                m_request.target = requestLine.value(1);
                m_request.version = requestLine.value(2);
                for (qsizetype i = 1; i < lines.size(); ++i) {
                    const QByteArray line = lines.at(i).trimmed();
                    const qsizetype colon = line.indexOf(':');
                    if (colon > 0)
                        m_request.headers.append(
                            { line.left(colon).trimmed(), line.mid(colon + 1).trimmed() });
                }
                if (m_request.header("Transfer-Encoding").toLower().contains("chunked")) {
                    m_state = State::Chunked;
                    m_remaining = -1;
                } else {
                    m_remaining = m_request.header("Content-Length").toLongLong();
                    m_state = State::Body;
                }
                continue;
            }
            if (m_state == State::Body) {
                if (m_input.size() < m_remaining)
                    return;
                m_request.body = m_input.left(m_remaining);
                m_input.remove(0, m_remaining);
                dispatch();
                return;
            }
            // chunked request body
            if (m_remaining > 0) {
                if (m_input.size() < m_remaining + 2)
                    return;
                m_request.body.append(m_input.left(m_remaining));
                m_input.remove(0, m_remaining + 2);
                m_remaining = -1;
                continue;
            }
            const qsizetype lineEnd = m_input.indexOf("\r\n");
            if (lineEnd < 0)
                return;
            const QByteArray line = m_input.left(lineEnd);
            m_input.remove(0, lineEnd + 2);
            if (m_remaining == -2) { // trailers
                if (line.isEmpty()) {
                    dispatch();
                    return;
                }
                continue;
            }
            const qint64 size = line.split(';').first().trimmed().toLongLong(nullptr, 16);
            m_remaining = size == 0 ? -2 : size;
        }
    }

    void dispatch()
    {
        m_state = State::Responding;
        m_requestWantsClose = m_request.header("Connection").toLower().contains("close");
        m_isHead = m_request.method == "HEAD";
        const RecordedRequest request = m_request;
        m_owner->onRequest(this, request); // calls respond()
    }

public:
    void respond(const MockResponse &response)
    {
        m_owner->onResponseStarted();
        m_responding = true;
        if (response.delayMs > 0) {
            QTimer::singleShot(response.delayMs, this, [this, response] { start(response); });
        } else {
            start(response);
        }
    }

private:
    QByteArray head(const MockResponse &response, const Headers &framing) const
    {
        QByteArray out
            = "HTTP/1.1 " + QByteArray::number(response.status) + ' ' + reason(response.status) + "\r\n";
        for (const auto &header : response.headers)
            out += header.first + ": " + header.second + "\r\n";
        for (const auto &header : framing)
            out += header.first + ": " + header.second + "\r\n";
        return out + "\r\n";
    }

    void write(const QByteArray &data)
    {
        if (m_socket && m_socket->state() == QAbstractSocket::ConnectedState)
            m_socket->write(data);
    }

    void start(const MockResponse &response)
    {
        if (!m_socket || m_state == State::Closed)
            return;
        m_closeAfter = response.closeAfter || m_requestWantsClose;
        const QByteArray closeValue = m_closeAfter ? QByteArray("close") : QByteArray();
        switch (response.mode) {
        case MockResponse::Mode::Hold:
            return;
        case MockResponse::Mode::Fixed: {
            Headers framing { { "Content-Length", QByteArray::number(response.body.size()) } };
            if (m_closeAfter)
                framing.append(makeHeader("Connection", "close"));
            write(head(response, framing));
            if (!m_isHead)
                write(response.body);
            finish();
            return;
        }
        case MockResponse::Mode::Chunked: {
            Headers framing { { "Transfer-Encoding", "chunked" } };
            if (m_closeAfter)
                framing.append(makeHeader("Connection", "close"));
            QByteArray out = head(response, framing);
            if (!m_isHead) {
                const qsizetype step = qMax(1, response.chunkSize);
                for (qsizetype at = 0; at < response.body.size(); at += step)
                    out += chunk(response.body.mid(at, step));
                out += "0\r\n\r\n";
            }
            write(out);
            finish();
            return;
        }
        case MockResponse::Mode::CloseDelimited: {
            write(head(response, { { "Connection", "close" } }));
            const qsizetype tail = qMin<qsizetype>(4, response.body.size());
            write(response.body.left(response.body.size() - tail));
            const QByteArray last = response.body.right(tail);
            QTimer::singleShot(50, this, [this, last] {
                write(last);
                m_closeAfter = true;
                finish();
            });
            return;
        }
        case MockResponse::Mode::CutOff: {
            write(head(response, { { "Content-Length", QByteArray::number(response.body.size()) } }));
            write(response.body.left(response.cutAfterBytes));
            QTimer::singleShot(50, this, [this] {
                if (m_socket)
                    m_socket->disconnectFromHost();
            });
            return;
        }
        case MockResponse::Mode::Events: {
            Headers framing { { "Transfer-Encoding", "chunked" } };
            write(head(response, framing));
            const qsizetype count = response.events.size();
            if (count == 0 && response.endStream) {
                write("0\r\n\r\n");
                finish();
                return;
            }
            for (qsizetype i = 0; i < count; ++i) {
                const auto &event = response.events.at(i);
                const bool last = i == count - 1;
                const bool end = last && response.endStream;
                const QByteArray data = event.second;
                QTimer::singleShot(event.first, Qt::PreciseTimer, this, [this, data, end] {
                    write(chunk(data));
                    if (end) {
                        write("0\r\n\r\n");
                        finish();
                    }
                });
            }
            return;
        }
        }
    }

    void finish()
    {
        if (!m_responding)
            return;
        m_responding = false;
        m_owner->onResponseDone(m_id);
        if (m_closeAfter) {
            m_state = State::Closed;
            if (m_socket) {
                if (m_socket->bytesToWrite() == 0)
                    m_socket->disconnectFromHost();
                else
                    m_closeWhenFlushed = true;
            }
            return;
        }
        m_state = State::Head;
        if (!m_input.isEmpty())
            QTimer::singleShot(0, this, [this] { parse(); });
    }

    void onClosed()
    {
        if (m_closedReported)
            return;
        m_closedReported = true;
        m_state = State::Closed;
        const bool wasResponding = m_responding;
        m_responding = false;
        m_owner->onConnectionClosed(this, m_id, wasResponding);
        deleteLater();
    }

    MockUpstream *m_owner;
    QPointer<QTcpSocket> m_socket;
    int m_id;
    State m_state = State::Head;
    QByteArray m_input;
    RecordedRequest m_request;
    qint64 m_remaining = 0;
    bool m_requestWantsClose = false;
    bool m_isHead = false;
    bool m_responding = false;
    bool m_closeAfter = false;
    bool m_closeWhenFlushed = false;
    bool m_closedReported = false;
};

MockUpstream::MockUpstream(QObject *parent) : QObject(parent), m_server(new QTcpServer(this))
{
    m_clock.start();
    m_handler = [](const RecordedRequest &) {
        return MockResponse::fixed(200, "ok", { { "Content-Type", "text/plain" } });
    };
    m_server->setListenBacklogSize(1024);
    m_server->setMaxPendingConnections(1024);
    connect(m_server, &QTcpServer::newConnection, this, &MockUpstream::onNewConnection);
}

MockUpstream::~MockUpstream()
{
    // Connections are children; make sure their close callbacks do not run into a half-destroyed owner.
    const auto connections = m_connections;
    m_connections.clear();
    for (MockConnection *connection : connections) {
        connection->disconnect();
        delete connection;
    }
}

bool MockUpstream::listen(quint16 port)
{
    return m_server->listen(QHostAddress(QHostAddress::LocalHost), port);
}

quint16 MockUpstream::port() const
{
    return m_server->serverPort();
}

QUrl MockUpstream::url(const QString &path) const
{
    return QUrl(QStringLiteral("http://127.0.0.1:%1%2").arg(port()).arg(path));
}

bool MockUpstream::isConnectionOpen(int connectionId) const
{
    return m_connections.contains(connectionId);
}

void MockUpstream::dropAllConnections()
{
    const auto connections = m_connections;
    for (MockConnection *connection : connections)
        connection->drop();
}

void MockUpstream::onNewConnection()
{
    while (QTcpSocket *socket = m_server->nextPendingConnection()) {
        const int id = m_nextConnectionId++;
        m_connections.insert(id, new MockConnection(this, socket, id));
    }
}

void MockUpstream::onRequest(MockConnection *connection, RecordedRequest request)
{
    request.receivedAtMs = m_clock.elapsed();
    m_requests.append(request);
    const MockResponse response = m_handler(request);
    connection->respond(response);
    Q_EMIT requestReceived(int(m_requests.size()) - 1);
}

void MockUpstream::onResponseStarted()
{
    ++m_active;
    m_peakActive = qMax(m_peakActive, m_active);
}

void MockUpstream::onResponseDone(int connectionId)
{
    --m_active;
    Q_EMIT responseFinished(connectionId);
}

void MockUpstream::onConnectionClosed(MockConnection *, int id, bool wasResponding)
{
    if (wasResponding)
        --m_active;
    m_connections.remove(id);
    m_closed.append(id);
    Q_EMIT clientDisconnected(id);
}

} // namespace it
