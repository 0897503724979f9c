// libFuzzer target: HttpRequestParser driven the way HttpConnection drives it.
//
// Input layout (see README.md): an 8-byte prefix, then the bytes a client sends.
//   byte 0      bits 0-1: limits profile (0, 3 defaults; 1 small; 2 tiny), bit 2: split run feeds byte by
//   byte bytes 1..7  split points, each at (byte * payload size / 256) of the payload
// The payload is parsed twice, once in one piece and once in the chosen pieces; every call is checked
// against the invariants below and both runs must produce the same requests and the same outcome.
#include "fuzzcheck.h"
#include "httprequestparser.h"

#include <QByteArray>
#include <QList>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

using keyrelay::HttpLimits;
using keyrelay::HttpRequest;
using keyrelay::HttpRequestParser;

namespace {

constexpr size_t PrefixBytes = 8;

[[noreturn]] void violated(const char *what, int line)
{
    fuzzsupport::reportViolation("fuzz_request_parser", what, line);
    std::abort();
}

HttpLimits limitsFor(unsigned profile)
{
    HttpLimits limits;
    if (profile == 1) {
        limits.maxHeadBytes = 256;
        limits.maxHeaderCount = 8;
        limits.maxBodyBytes = 64;
    } else if (profile == 2) {
        limits.maxHeadBytes = 40;
        limits.maxHeaderCount = 2;
        limits.maxBodyBytes = 4;
    }
    return limits;
}

bool hasCtlOrSpace(const QByteArray &text)
{
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte <= 0x20 || byte == 0x7f)
            return true;
    }
    return false;
}

bool isDigits(const QByteArray &text)
{
    if (text.isEmpty())
        return false;
    for (const char c : text) {
        if (c < '0' || c > '9')
            return false;
    }
    return true;
}

// What every head the parser hands out must satisfy (checked on HeadParsed and again on Complete).
void checkHead(const HttpRequest &request, const HttpLimits &limits)
{
    FUZZ_CHECK(HttpRequestParser::isToken(request.method));
    FUZZ_CHECK(!request.target.isEmpty());
    FUZZ_CHECK(!hasCtlOrSpace(request.target));
    FUZZ_CHECK(request.minorVersion == 0 || request.minorVersion == 1);
    FUZZ_CHECK(request.headers.size() <= limits.maxHeaderCount);

    qint64 headBytes = request.method.size() + request.target.size();
    int contentLengths = 0;
    int transferEncodings = 0;
    QByteArray firstContentLength;
    for (const auto &header : request.headers) {
        headBytes += header.first.size() + header.second.size();
        FUZZ_CHECK(HttpRequestParser::isToken(header.first));
        FUZZ_CHECK(!header.second.contains('\0'));
        FUZZ_CHECK(!header.second.contains('\r'));
        FUZZ_CHECK(!header.second.contains('\n'));
        FUZZ_CHECK(!header.second.startsWith(' ') && !header.second.startsWith('\t'));
        FUZZ_CHECK(!header.second.endsWith(' ') && !header.second.endsWith('\t'));
        const QByteArray name = header.first.toLower();
        if (name == "content-length") {
            FUZZ_CHECK(isDigits(header.second)); // no "+34", "-0", " 34", "0x22"
            if (contentLengths++ == 0)
                firstContentLength = header.second;
            FUZZ_CHECK(header.second == firstContentLength); // differing lengths are refused
        } else if (name == "transfer-encoding") {
            ++transferEncodings;
        }
    }
    FUZZ_CHECK(headBytes <= limits.maxHeadBytes);
    FUZZ_CHECK(contentLengths <= 1); // repeated Content-Length is refused
    FUZZ_CHECK(contentLengths == 0 || transferEncodings == 0); // CL + TE is refused
    FUZZ_CHECK(transferEncodings == 0 || request.minorVersion == 1);
}

void checkComplete(const HttpRequest &request, const HttpLimits &limits)
{
    checkHead(request, limits);
    FUZZ_CHECK(request.body.size() <= limits.maxBodyBytes);
    const QByteArray contentLength = request.header("Content-Length");
    const QByteArray transferEncoding = request.header("Transfer-Encoding");
    if (!contentLength.isEmpty())
        FUZZ_CHECK(request.body.size() == contentLength.toLongLong());
    else if (transferEncoding.isEmpty())
        FUZZ_CHECK(request.body.isEmpty());
    else {
        // The last non-empty list element is chunked (empty list elements are ignored, RFC 9110 5.6.1).
        QByteArray last;
        for (const QByteArray &element : transferEncoding.split(',')) {
            if (!element.trimmed().isEmpty())
                last = element.trimmed().toLower();
        }
        FUZZ_CHECK(last == "chunked");
    }
}

void appendField(QByteArray *out, const QByteArray &field)
{
    out->append(QByteArray::number(field.size()));
    out->append(':');
    out->append(field);
}

QByteArray serialise(const HttpRequest &request)
{
    QByteArray out;
    appendField(&out, request.method);
    appendField(&out, request.target);
    appendField(&out, QByteArray::number(request.minorVersion));
    for (const auto &header : request.headers) {
        appendField(&out, header.first);
        appendField(&out, header.second);
    }
    appendField(&out, request.body);
    appendField(&out, request.keepAlive ? "keep-alive" : "close");
    return out;
}

struct Run
{
    QList<QByteArray> events; ///< "H" + head, "C" + request, "E" + status; NeedMore is not recorded
    QByteArray leftover; ///< input not consumed at the end
    bool failed = false;
};

// Feeds @p payload cut at @p cuts (sorted offsets), like HttpConnection: append what arrived, then
// parse until the parser needs more or fails; on Complete take the request, reset, go on (pipelining).
Run drive(const QByteArray &payload, const std::vector<qsizetype> &cuts, const HttpLimits &limits)
{
    Run run;
    HttpRequestParser parser(limits);
    FUZZ_CHECK(parser.isIdle());
    QByteArray buffer;
    qint64 fed = 0;
    qint64 consumed = 0;
    bool inRequest = false; // a HeadParsed was seen and its Complete not yet
    qsizetype start = 0;
    for (size_t piece = 0; piece <= cuts.size() && !run.failed; ++piece) {
        const qsizetype end = piece < cuts.size() ? cuts[piece] : payload.size();
        if (buffer.isEmpty()) // as in the one-piece run: the parser reads the exact bytes given
            buffer = QByteArray::fromRawData(payload.constData() + start, end - start);
        else
            buffer.append(payload.constData() + start, end - start);
        fed += end - start;
        start = end;
        // Each round either consumes input or moves HeadParsed -> Complete, so this bounds a stuck loop.
        qsizetype rounds = 2 * buffer.size() + 8;
        while (true) {
            FUZZ_CHECK(--rounds > 0);
            const QByteArray before = buffer;
            const HttpRequestParser::Event event = parser.parse(buffer);
            // Consumed from the front only, and never more than was given.
            FUZZ_CHECK(buffer.size() <= before.size());
            const qsizetype taken = before.size() - buffer.size();
            FUZZ_CHECK(std::memcmp(buffer.constData(), before.constData() + taken, size_t(buffer.size()))
                       == 0);
            consumed += taken;
            FUZZ_CHECK(consumed <= fed);
            FUZZ_CHECK(consumed + buffer.size() == fed);
            if (event == HttpRequestParser::Event::NeedMore) {
                FUZZ_CHECK(parser.errorStatus() == 0);
                break;
            }
            if (event == HttpRequestParser::Event::HeadParsed) {
                FUZZ_CHECK(!inRequest); // one head per request
                inRequest = true;
                FUZZ_CHECK(!parser.isReadingHead());
                checkHead(parser.request(), limits);
                run.events.append('H' + serialise(parser.request()));
                continue;
            }
            if (event == HttpRequestParser::Event::Complete) {
                FUZZ_CHECK(inRequest); // every request announced its head first
                inRequest = false;
                FUZZ_CHECK(!parser.isReadingBody());
                FUZZ_CHECK(parser.bodyRemaining() == 0);
                const HttpRequest request = parser.takeRequest();
                checkComplete(request, limits);
                run.events.append('C' + serialise(request));
                parser.reset();
                FUZZ_CHECK(parser.isIdle());
                FUZZ_CHECK(parser.errorStatus() == 0);
                continue;
            }
            FUZZ_CHECK(event == HttpRequestParser::Event::Error);
            FUZZ_CHECK(parser.errorStatus() >= 400 && parser.errorStatus() <= 599);
            FUZZ_CHECK(!parser.errorMessage().isEmpty());
            FUZZ_CHECK(parser.errorDrainBytes() >= -1);
            // A failed parser stays failed.
            QByteArray again = buffer;
            FUZZ_CHECK(parser.parse(again) == HttpRequestParser::Event::Error);
            run.events.append('E' + QByteArray::number(parser.errorStatus()));
            run.failed = true;
            break;
        }
    }
    run.leftover = buffer;
    return run;
}

void dump(const char *label, const Run &run)
{
    std::fprintf(stderr, "%s: %lld events%s, %lld bytes left\n", label,
                 static_cast<long long>(run.events.size()), run.failed ? " (ends in Error)" : "",
                 static_cast<long long>(run.leftover.size()));
    for (const QByteArray &event : run.events) {
        const QByteArray shown = event.left(160).toPercentEncoding(" :/;=,.-_!#$&'()*+");
        std::fprintf(stderr, "  %s%s\n", shown.constData(), event.size() > 160 ? "..." : "");
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < PrefixBytes)
        return 0;
    const HttpLimits limits = limitsFor(data[0] & 3u);
    const bool byteByByte = (data[0] & 4u) != 0;
    // fromRawData: the parser reads libFuzzer's exact-size buffer (copy-on-write on the first change),
    // so AddressSanitizer sees any read past the end of the input.
    const QByteArray payload = QByteArray::fromRawData(reinterpret_cast<const char *>(data + PrefixBytes),
                                                       qsizetype(size - PrefixBytes));

    std::vector<qsizetype> cuts;
    if (byteByByte) {
        for (qsizetype i = 1; i < payload.size(); ++i)
            cuts.push_back(i);
    } else {
        for (size_t i = 1; i < PrefixBytes; ++i)
            cuts.push_back(qsizetype(data[i]) * payload.size() / 256);
        std::sort(cuts.begin(), cuts.end());
    }

    const Run whole = drive(payload, {}, limits);
    const Run split = drive(payload, cuts, limits);
    // Where a request ends, and how it is refused, must not depend on how the bytes arrived.
    if (whole.events != split.events || whole.failed != split.failed
        || (!whole.failed && whole.leftover != split.leftover)) {
        dump("in one piece", whole);
        std::fprintf(stderr, "split at");
        for (const qsizetype cut : cuts)
            std::fprintf(stderr, " %lld", static_cast<long long>(cut));
        std::fprintf(stderr, "\n");
        dump("split", split);
        violated("the same bytes give different events in one piece and split", __LINE__);
    }
    return 0;
}
