#include "httprequestparser.h"

namespace keyrelay {

namespace {
constexpr int MaxChunkLineBytes = 1024;
constexpr int MaxContentLengthDigits = 18;
constexpr int MaxChunkSizeDigits = 15;

bool isHexDigit(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/// RFC 9110 5.5: field values never hold NUL, CR or LF; other controls but HTAB are refused as well.
bool isValidFieldValue(const QByteArray &value)
{
    for (const char c : value) {
        const auto byte = static_cast<unsigned char>(c);
        if ((byte < 0x20 && byte != '\t') || byte == 0x7f)
            return false;
    }
    return true;
}

bool isDigits(const QByteArray &text)
{
    for (const char c : text) {
        if (c < '0' || c > '9')
            return false;
    }
    return true;
}

/// RFC 9110 7.2 / RFC 3986 3.2.2: uri-host [ ":" port ], the host an IP-literal ("[" v6 "]") or a
/// reg-name (unreserved, pct-encoded, sub-delims); an empty reg-name is allowed by the grammar.
bool isValidHostHeader(const QByteArray &value)
{
    if (value.startsWith('[')) {
        const qsizetype close = value.indexOf(']');
        if (close < 2)
            return false;
        for (qsizetype i = 1; i < close; ++i) {
            const char c = value.at(i);
            if (!isHexDigit(c) && c != ':' && c != '.')
                return false;
        }
        const QByteArray rest = value.mid(close + 1);
        return rest.isEmpty() || (rest.startsWith(':') && isDigits(rest.mid(1)));
    }
    const qsizetype colon = value.indexOf(':');
    if (colon >= 0 && !isDigits(value.mid(colon + 1)))
        return false;
    const QByteArray name = colon >= 0 ? value.left(colon) : value;
    for (qsizetype i = 0; i < name.size(); ++i) {
        const char c = name.at(i);
        const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
            || c == '-' || c == '.' || c == '_' || c == '~';
        const bool subDelim = c == '!' || c == '$' || c == '&' || c == '\'' || c == '(' || c == ')'
            || c == '*' || c == '+' || c == ',' || c == ';' || c == '=';
        if (c == '%' && i + 2 < name.size() && isHexDigit(name.at(i + 1)) && isHexDigit(name.at(i + 2))) {
            i += 2;
            continue;
        }
        if (!unreserved && !subDelim)
            return false;
    }
    return true;
}

QByteArray trimOws(const QByteArray &value)
{
    qsizetype start = 0;
    qsizetype end = value.size();
    while (start < end && (value.at(start) == ' ' || value.at(start) == '\t'))
        ++start;
    while (end > start && (value.at(end - 1) == ' ' || value.at(end - 1) == '\t'))
        --end;
    return value.mid(start, end - start);
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

HttpRequestParser::HttpRequestParser(const HttpLimits &limits) : m_limits(limits) { }

bool HttpRequestParser::isToken(const QByteArray &text)
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

bool HttpRequestParser::isReadingBody() const
{
    return m_state == State::Body || m_state == State::ChunkSize || m_state == State::ChunkData
        || m_state == State::ChunkDataEnd || m_state == State::Trailers;
}

void HttpRequestParser::reset()
{
    m_state = State::Head;
    m_request = HttpRequest();
    m_remaining = 0;
    m_headBytesSeen = 0;
    m_trailerBytes = 0;
    m_expectContinue = false;
    m_errorStatus = 0;
    m_errorMessage.clear();
    m_errorDrain = 0;
}

HttpRequest HttpRequestParser::takeRequest()
{
    HttpRequest request = std::move(m_request);
    m_request = HttpRequest();
    return request;
}

bool HttpRequestParser::takeBody(QByteArray &input)
{
    const qint64 take = qMin<qint64>(m_remaining, input.size());
    m_request.body.append(input.constData(), take);
    input.remove(0, take);
    m_remaining -= take;
    return m_remaining == 0;
}

HttpRequestParser::Event HttpRequestParser::fail(int status, const QByteArray &message, qint64 drain)
{
    m_state = State::Failed;
    m_errorStatus = status;
    m_errorMessage = message;
    m_errorDrain = drain;
    return Event::Error;
}

bool HttpRequestParser::takeLine(QByteArray &input, QByteArray *line)
{
    const qsizetype end = input.indexOf('\n');
    if (end < 0)
        return false;
    *line = input.left(end > 0 && input.at(end - 1) == '\r' ? end - 1 : end);
    input.remove(0, end + 1);
    return true;
}

HttpRequestParser::Event HttpRequestParser::parse(QByteArray &input)
{
    switch (m_state) {
    case State::Failed:
        return Event::Error;
    case State::Done:
        return Event::Complete;
    case State::Head:
        return parseHead(input);
    case State::Body:
        if (!takeBody(input))
            return Event::NeedMore;
        m_state = State::Done;
        return Event::Complete;
    case State::ChunkSize:
    case State::ChunkData:
    case State::ChunkDataEnd:
    case State::Trailers:
        return parseChunked(input);
    }
    return Event::NeedMore;
}

HttpRequestParser::Event HttpRequestParser::parseHead(QByteArray &input)
{
    if (m_headBytesSeen == 0) {
        // Empty lines before a request are tolerated (RFC 9112 2.2), not counted as a request.
        qsizetype skip = 0;
        while (skip < input.size() && (input.at(skip) == '\r' || input.at(skip) == '\n'))
            ++skip;
        input.remove(0, skip);
    }
    m_headBytesSeen = input.size();
    if (input.isEmpty())
        return Event::NeedMore;
    // The head ends with an empty line: "\n\n" or "\n\r\n" (CRLF or bare LF line ends).
    const QByteArrayView view(input.constData(), qMin<qsizetype>(input.size(), m_limits.maxHeadBytes + 4));
    qsizetype end = -1;
    qsizetype terminator = 0;
    for (qsizetype i = view.indexOf('\n'); i >= 0 && i + 1 < view.size(); i = view.indexOf('\n', i + 1)) {
        if (view.at(i + 1) == '\n') {
            end = i;
            terminator = 2;
            break;
        }
        if (view.at(i + 1) == '\r' && i + 2 < view.size() && view.at(i + 2) == '\n') {
            end = i;
            terminator = 3;
            break;
        }
    }
    if (end < 0) {
        // Up to two bytes of the terminator may already be here for a head of exactly the limit.
        if (input.size() > m_limits.maxHeadBytes + 2)
            return fail(431, "request headers are too large");
        return Event::NeedMore;
    }
    if (end > m_limits.maxHeadBytes)
        return fail(431, "request headers are too large");
    const QByteArray head = input.left(end);
    input.remove(0, end + terminator);
    m_headBytesSeen = head.size();
    return parseHeadLines(head);
}

HttpRequestParser::Event HttpRequestParser::parseHeadLines(const QByteArray &head)
{
    QList<QByteArray> lines = head.split('\n');
    for (QByteArray &line : lines) {
        if (line.endsWith('\r'))
            line.chop(1);
        if (line.contains('\r'))
            return fail(400, "bare CR in the request head");
        if (line.contains('\0'))
            return fail(400, "NUL in the request head");
    }
    if (lines.size() - 1 > m_limits.maxHeaderCount)
        return fail(431,
                    "too many request headers (the limit is " + QByteArray::number(m_limits.maxHeaderCount)
                        + ")");

    const QList<QByteArray> requestLine = lines.first().split(' ');
    if (requestLine.size() == 2 && isToken(requestLine.at(0)))
        return fail(400, "HTTP/0.9 requests are not supported");
    if (requestLine.size() != 3 || !isToken(requestLine.at(0)) || requestLine.at(1).isEmpty())
        return fail(400, "malformed request line");
    const QByteArray &version = requestLine.at(2);
    if (version == "HTTP/1.1") {
        m_request.minorVersion = 1;
    } else if (version == "HTTP/1.0") {
        m_request.minorVersion = 0;
    } else if (version.startsWith("HTTP/") && version.size() == 8 && version.at(6) == '.') {
        return fail(505, "only HTTP/1.0 and HTTP/1.1 are supported");
    } else {
        return fail(400, "malformed HTTP version");
    }
    for (const char c : requestLine.at(1)) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte <= 0x20 || byte == 0x7f)
            return fail(400, "malformed request target");
    }
    m_request.method = requestLine.at(0);
    m_request.target = requestLine.at(1);

    QByteArray connection;
    int hostCount = 0;
    QByteArray host;
    QList<QByteArray> transferCodings;
    int contentLengthCount = 0;
    QByteArray contentLength;
    for (qsizetype i = 1; i < lines.size(); ++i) {
        const QByteArray &line = lines.at(i);
        if (line.startsWith(' ') || line.startsWith('\t'))
            return fail(400, "obsolete line folding in the request head");
        const qsizetype colon = line.indexOf(':');
        if (colon <= 0 || !isToken(line.left(colon)))
            return fail(400, "malformed header line");
        const QByteArray name = line.left(colon);
        const QByteArray value = trimOws(line.mid(colon + 1));
        if (!isValidFieldValue(value))
            return fail(400, "invalid character in the value of header " + name);
        const QByteArray lower = name.toLower();
        if (lower == "content-length") {
            ++contentLengthCount;
            contentLength = value;
        } else if (lower == "transfer-encoding") {
            const QList<QByteArray> codings = value.split(',');
            for (const QByteArray &coding : codings) {
                const QByteArray trimmed = trimOws(coding).toLower();
                if (!trimmed.isEmpty())
                    transferCodings.append(trimmed);
            }
            if (transferCodings.isEmpty())
                return fail(400, "empty Transfer-Encoding");
        } else if (lower == "host") {
            ++hostCount;
            host = value;
        } else if (lower == "connection") {
            connection += ',' + value.toLower();
        } else if (lower == "expect") {
            m_expectContinue = value.toLower() == "100-continue";
        }
        m_request.headers.append({ name, value });
    }
    // RFC 9112 3.2: one Host, well-formed; HTTP/1.1 must send it. Two Host lines would let KeyRelay's
    // Host check and a later reader disagree about the name the request was sent to.
    if (hostCount > 1)
        return fail(400, "more than one Host header");
    if (hostCount == 0 && m_request.minorVersion == 1)
        return fail(400, "HTTP/1.1 request without a Host header");
    if (hostCount == 1 && !isValidHostHeader(host))
        return fail(400, "invalid Host header");
    m_request.keepAlive
        = m_request.minorVersion == 1 ? !connection.contains("close") : connection.contains("keep-alive");

    // Framing (RFC 9112 6): exactly one way to know where the body ends, or the request is refused.
    if (contentLengthCount > 0 && !transferCodings.isEmpty())
        return fail(400, "Content-Length together with Transfer-Encoding");
    if (!transferCodings.isEmpty()) {
        if (m_request.minorVersion == 0)
            return fail(400, "Transfer-Encoding in an HTTP/1.0 request");
        if (transferCodings.count("chunked") > 1)
            return fail(400, "chunked applied more than once");
        if (transferCodings.last() != "chunked")
            return fail(400, "chunked must be the final transfer coding");
        if (transferCodings.size() > 1)
            return fail(501, "unsupported Transfer-Encoding " + transferCodings.first());
        m_state = State::ChunkSize;
        return Event::HeadParsed;
    }
    if (contentLengthCount > 1)
        return fail(400, "repeated Content-Length");
    if (contentLengthCount == 1) {
        if (contentLength.isEmpty() || contentLength.size() > MaxContentLengthDigits)
            return fail(400, "invalid Content-Length");
        for (const char c : std::as_const(contentLength)) {
            if (c < '0' || c > '9')
                return fail(400, "invalid Content-Length");
        }
        const qint64 length = contentLength.toLongLong();
        if (length > m_limits.maxBodyBytes) {
            // A client that waits for "100 Continue" sends no body; any other one is still uploading it.
            return fail(413,
                        "request body of " + QByteArray::number(length) + " bytes is over the limit of "
                            + QByteArray::number(m_limits.maxBodyBytes) + " bytes",
                        m_expectContinue ? 0 : length);
        }
        m_remaining = length;
    }
    m_state = m_remaining > 0 ? State::Body : State::Done;
    return Event::HeadParsed;
}

HttpRequestParser::Event HttpRequestParser::parseChunked(QByteArray &input)
{
    while (true) {
        switch (m_state) {
        case State::ChunkSize: {
            const qsizetype lineEnd = input.indexOf('\n');
            if (lineEnd < 0) {
                if (input.size() > MaxChunkLineBytes)
                    return fail(400, "malformed chunk size");
                return Event::NeedMore;
            }
            if (lineEnd > MaxChunkLineBytes)
                return fail(400, "malformed chunk size");
            QByteArray line;
            takeLine(input, &line);
            // chunk-size = 1*HEXDIG, then optional extensions: [BWS] ";" ...
            qsizetype digits = 0;
            while (digits < line.size() && isHexDigit(line.at(digits)))
                ++digits;
            if (digits == 0 || digits > MaxChunkSizeDigits)
                return fail(400, "malformed chunk size");
            qsizetype rest = digits;
            while (rest < line.size() && (line.at(rest) == ' ' || line.at(rest) == '\t'))
                ++rest;
            if (rest < line.size() && line.at(rest) != ';')
                return fail(400, "malformed chunk size");
            if (rest == line.size() && rest != digits)
                return fail(400, "malformed chunk size"); // whitespace without an extension
            if (!isValidFieldValue(line.mid(rest)))
                return fail(400, "invalid character in a chunk extension");
            bool ok = false;
            const qint64 size = line.left(digits).toLongLong(&ok, 16);
            if (!ok)
                return fail(400, "malformed chunk size");
            if (size == 0) {
                m_state = State::Trailers;
                continue;
            }
            if (m_request.body.size() + size > m_limits.maxBodyBytes) {
                return fail(413,
                            "request body is over the limit of " + QByteArray::number(m_limits.maxBodyBytes)
                                + " bytes",
                            m_expectContinue ? 0 : -1);
            }
            m_remaining = size;
            m_state = State::ChunkData;
            continue;
        }
        case State::ChunkData:
            if (!takeBody(input))
                return Event::NeedMore;
            m_state = State::ChunkDataEnd;
            continue;
        case State::ChunkDataEnd:
            if (input.isEmpty() || input == "\r")
                return Event::NeedMore;
            if (input.startsWith("\r\n"))
                input.remove(0, 2);
            else if (input.startsWith('\n'))
                input.remove(0, 1);
            else
                return fail(400, "missing CRLF after chunk data");
            m_state = State::ChunkSize;
            continue;
        case State::Trailers: {
            // Trailer fields are read (they count toward the head limit) and dropped, never forwarded.
            QByteArray line;
            const qsizetype lineEnd = input.indexOf('\n');
            const qint64 pending = lineEnd < 0 ? input.size() : lineEnd + 1;
            if (m_headBytesSeen + m_trailerBytes + pending > m_limits.maxHeadBytes)
                return fail(431, "request trailers are too large");
            if (!takeLine(input, &line))
                return Event::NeedMore;
            m_trailerBytes += pending;
            if (line.isEmpty()) {
                m_state = State::Done;
                return Event::Complete;
            }
            if (line.contains('\r') || line.contains('\0'))
                return fail(400, "invalid character in a trailer");
            continue;
        }
        default:
            return parse(input);
        }
    }
}

} // namespace keyrelay
