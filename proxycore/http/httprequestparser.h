// The HTTP/1.1 request parser of the local front end, without any socket: bytes in, requests or a
// precise refusal out. Strict where RFC 9110/9112 let a server refuse, so that KeyRelay and the
// upstream can never disagree about where a request ends (request smuggling).
#pragma once

#include <QByteArray>
#include <QList>
#include <QPair>

namespace keyrelay {

using HeaderList = QList<QPair<QByteArray, QByteArray>>;

/// Case-insensitive lookup of the first header named @p name.
QByteArray headerValue(const HeaderList &headers, const QByteArray &name);

struct HttpRequest
{
    QByteArray method; ///< as sent (methods are case-sensitive tokens), e.g. "POST"
    QByteArray target; ///< request target as sent, e.g. "/v1/models?limit=5"
    int minorVersion = 1; ///< HTTP/1.x
    HeaderList headers; ///< in order, names as sent
    QByteArray body; ///< de-chunked; trailers are dropped
    bool keepAlive = true;

    QByteArray header(const QByteArray &name) const { return headerValue(headers, name); }
};

struct HttpLimits
{
    qint64 maxHeadBytes = 64 * 1024; ///< request line + headers; trailers count toward it as well
    int maxHeaderCount = 100;
    qint64 maxBodyBytes = qint64(32) * 1024 * 1024;
    int keepAliveIdleMs = 120 * 1000; ///< an idle connection (no request in flight) is closed after this
    int headTimeoutMs = 10 * 1000; ///< a request head must be complete this long after its first byte
    /// A body must bring at least this many bytes per headTimeoutMs window until it is complete.
    qint64 minBodyBytesPerWindow = 16 * 1024;
};

class HttpRequestParser
{
public:
    enum class Event {
        NeedMore, ///< everything given was consumed; more input is needed
        HeadParsed, ///< the head is complete (see expectsContinue()); call parse() again for the body
        Complete, ///< request() is complete; input after it is left for the next request
        Error, ///< errorStatus()/errorMessage(); the connection must answer and close
    };

    explicit HttpRequestParser(const HttpLimits &limits = HttpLimits());

    /// Consumes bytes from the front of @p input as far as it can.
    Event parse(QByteArray &input);
    /// Forgets the current request (after Complete), ready for the next one on the connection.
    void reset();

    bool isIdle() const { return m_state == State::Head && m_headBytesSeen == 0; }
    bool isReadingHead() const { return m_state == State::Head; }
    bool isReadingBody() const;
    const HttpRequest &request() const { return m_request; }
    HttpRequest takeRequest();
    bool expectsContinue() const { return m_expectContinue; }
    /// Body bytes declared by Content-Length still to come (0 for chunked or none).
    qint64 bodyRemaining() const { return m_state == State::Body ? m_remaining : 0; }
    qint64 bodyBytesReceived() const { return m_request.body.size(); }

    int errorStatus() const { return m_errorStatus; }
    QByteArray errorMessage() const { return m_errorMessage; }
    /// After an Error: request body bytes the client is still sending, to be read and dropped before
    /// closing (so it sees the answer instead of a reset): 0 none, > 0 that many, -1 unknown.
    qint64 errorDrainBytes() const { return m_errorDrain; }

    static bool isToken(const QByteArray &text);

private:
    /// Moves up to m_remaining bytes from @p input into the body; true once none remain.
    bool takeBody(QByteArray &input);
    enum class State { Head, Body, ChunkSize, ChunkData, ChunkDataEnd, Trailers, Done, Failed };

    Event fail(int status, const QByteArray &message, qint64 drain = 0);
    Event parseHead(QByteArray &input);
    Event parseHeadLines(const QByteArray &head);
    Event parseChunked(QByteArray &input);
    /// One line ending in LF (CRLF or bare LF); false when no complete line is there yet.
    static bool takeLine(QByteArray &input, QByteArray *line);

    HttpLimits m_limits;
    State m_state = State::Head;
    HttpRequest m_request;
    qint64 m_remaining = 0; ///< body (or chunk) bytes still to come
    qint64 m_headBytesSeen = 0;
    qint64 m_trailerBytes = 0;
    bool m_expectContinue = false;
    int m_errorStatus = 0;
    QByteArray m_errorMessage;
    qint64 m_errorDrain = 0;
};

} // namespace keyrelay
