// A tiny HTTP/1.1 upstream for the widget tests: records what it receives, answers with JSON.
#pragma once

#include <QHash>
#include <QList>
#include <QObject>
#include <QTcpServer>
#include <QTcpSocket>

struct ReceivedRequest
{
    QByteArray method;
    QByteArray path;
    QByteArray authorization;
    QByteArray body;
};

class MockUpstream : public QObject
{
    Q_OBJECT
public:
    explicit MockUpstream(QObject *parent = nullptr) : QObject(parent)
    {
        connect(&m_server, &QTcpServer::newConnection, this, [this] {
            while (QTcpSocket *socket = m_server.nextPendingConnection()) {
                connect(socket, &QTcpSocket::readyRead, this, [this, socket] { onData(socket); });
                connect(socket, &QTcpSocket::disconnected, socket, &QObject::deleteLater);
            }
        });
    }

    bool listen() { return m_server.listen(QHostAddress::LocalHost, 0); }
    quint16 port() const { return m_server.serverPort(); }
    QString baseUrl() const { return QStringLiteral("http://127.0.0.1:%1").arg(port()); }

    /// Requests carrying "Bearer <key>" get @p status (default 200).
    void setStatusForKey(const QByteArray &key, int status) { m_statusByKey.insert("Bearer " + key, status); }

    QList<ReceivedRequest> received;

Q_SIGNALS:
    void requestReceived();

private:
    void onData(QTcpSocket *socket)
    {
        QByteArray &buffer = m_buffers[socket];
        buffer += socket->readAll();
        const int headerEnd = int(buffer.indexOf("\r\n\r\n"));
        if (headerEnd < 0)
            return;
        const QList<QByteArray> lines = buffer.left(headerEnd).split('\n');
        ReceivedRequest request;
        const QList<QByteArray> first = lines.value(0).trimmed().split(' ');
        request.method = first.value(0);
        request.path = first.value(1);
        qsizetype length = 0;
        for (const QByteArray &raw : lines.mid(1)) {
            const QByteArray line = raw.trimmed();
            const int colon = int(line.indexOf(':'));
            if (colon < 0)
                continue;
            const QByteArray name = line.left(colon).trimmed().toLower();
            const QByteArray value = line.mid(colon + 1).trimmed();
            if (name == "authorization")
                request.authorization = value;
            else if (name == "content-length")
                length = value.toLongLong();
        }
        if (buffer.size() < headerEnd + 4 + length)
            return;
        request.body = buffer.mid(headerEnd + 4, length);
        m_buffers.remove(socket);
        received.append(request);

        const int status = m_statusByKey.value(request.authorization, 200);
        QByteArray body;
        if (status == 200) {
            body
                = R"({"id":"chatcmpl-1","object":"chat.completion","model":"gpt-test","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}})";
        } else {
            body
                = R"({"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}})";
        }
        const QByteArray reason = status == 200 ? "OK" : "Error";
        socket->write("HTTP/1.1 " + QByteArray::number(status) + ' ' + reason
                      + "\r\n"
                        "Content-Type: application/json\r\n"
                        "Content-Length: "
                      + QByteArray::number(body.size())
                      + "\r\n"
                        "Connection: close\r\n\r\n"
                      + body);
        socket->disconnectFromHost();
        Q_EMIT requestReceived();
    }

    QTcpServer m_server;
    QHash<QTcpSocket *, QByteArray> m_buffers;
    QHash<QByteArray, int> m_statusByKey;
};
