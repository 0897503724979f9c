// libFuzzer target: the upstream response head as libcurl hands it over, line by line
// (ResponseHeadReader, used by CurlEngine's header callback). The input is cut into lines at '\n', as curl
// cuts them; the first byte picks the byte budget. Invariants:
//  - the bytes counted never pass the budget without TooLarge, and once TooLarge it stays so;
//  - Complete comes at most once, only with a final status (200..999), and the status and headers do not
//    change after it (trailers are ignored);
//  - every header name is an HTTP token; no value holds CR, LF or NUL, or surrounding blanks;
//  - an interim answer (1xx) never completes the head.
#include "fuzzcheck.h"
#include "responsehead.h"

#include <QByteArray>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

using keyrelay::HeaderList;
using keyrelay::ResponseHeadReader;

namespace {

[[noreturn]] void violated(const char *what, int line)
{
    fuzzsupport::reportViolation("fuzz_response_head", what, line);
    std::abort();
}

bool isBlank(char c)
{
    return c == ' ' || c == '\t';
}

void checkHeaders(const HeaderList &headers)
{
    for (const auto &header : headers) {
        FUZZ_CHECK(!header.first.isEmpty());
        for (const char c : header.first)
            FUZZ_CHECK(c > ' ' && c < 127 && c != ':' && c != '(' && c != ')' && c != '"' && c != ',');
        FUZZ_CHECK(!header.second.contains('\r') && !header.second.contains('\n') && !header.second.contains('\0'));
        FUZZ_CHECK(header.second.isEmpty()
                   || (!isBlank(header.second.front()) && !isBlank(header.second.back())));
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const qint64 budget = 64 + qint64(data[0]) * 16; // 64 .. 4144 bytes
    const QByteArray input(reinterpret_cast<const char *>(data + 1), qsizetype(size - 1));
    ResponseHeadReader reader(budget);
    qint64 fed = 0;
    bool completed = false;
    bool tooLarge = false;
    int finalStatus = 0;
    HeaderList finalHeaders;
    qsizetype at = 0;
    while (at < input.size()) {
        qsizetype end = input.indexOf('\n', at);
        end = end < 0 ? input.size() : end + 1;
        const QByteArray line = input.mid(at, end - at);
        at = end;
        fed += line.size();
        const ResponseHeadReader::Progress progress = reader.feedLine(line.constData(), size_t(line.size()));
        if (tooLarge) {
            FUZZ_CHECK(progress == ResponseHeadReader::Progress::TooLarge);
            continue;
        }
        if (progress == ResponseHeadReader::Progress::TooLarge) {
            FUZZ_CHECK(fed > budget);
            FUZZ_CHECK(reader.isTooLarge());
            tooLarge = true;
            continue;
        }
        FUZZ_CHECK(fed <= budget);
        checkHeaders(reader.headers());
        if (progress == ResponseHeadReader::Progress::Complete) {
            FUZZ_CHECK(!completed);
            FUZZ_CHECK(reader.status() >= 200 && reader.status() <= 999);
            FUZZ_CHECK(reader.isComplete());
            completed = true;
            finalStatus = reader.status();
            finalHeaders = reader.headers();
        } else if (completed) {
            FUZZ_CHECK(reader.status() == finalStatus);
            FUZZ_CHECK(reader.headers() == finalHeaders);
        } else {
            FUZZ_CHECK(!reader.isComplete());
        }
    }
    return 0;
}
