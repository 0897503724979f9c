// libFuzzer target: the request target -> upstream URL path, as ProxyExchange builds it (issue 8, "Paths").
//
// Input: byte 0 picks the upstream base path, byte 1 the strip prefixes, the rest is the request target
// as HttpRequestParser hands it out (no space or control bytes). Invariants:
//  - resolveDotSegments() either refuses or gives a path that starts with "/", that never climbs above the
//    root even for an upstream that percent-decodes it and reads "\" as "/", and that resolves to itself;
//  - the upstream URL's path, as sent (QUrl::FullyEncoded), starts with the base path and what follows
//    the base never climbs above it (same decoding upstream).
#include "fuzzcheck.h"
#include "upstreampath.h"

#include "percentdecoding.h"

#include <QByteArray>
#include <QList>
#include <QString>
#include <QStringList>
#include <QUrl>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace UpstreamPath = keyrelay::UpstreamPath;

namespace {

const QString *g_target = nullptr;
const QString *g_path = nullptr;

[[noreturn]] void violated(const char *what, int line)
{
    fuzzsupport::reportViolation("fuzz_upstream_path", what, line);
    if (g_target)
        std::fprintf(stderr, "target: %s\n", g_target->toUtf8().constData());
    if (g_path)
        std::fprintf(stderr, "path: %s\n", g_path->toUtf8().constData());
    std::abort();
}

using fuzzsupport::percentDecoded;

// True when @p path, percent-decoded once with "\" read as "/", never goes above its start with "..".
bool staysInside(const QString &path)
{
    QByteArray decoded = percentDecoded(path.toUtf8());
    decoded.replace('\\', '/');
    int depth = 0;
    for (const QByteArray &segment : decoded.split('/')) {
        if (segment.isEmpty() || segment == ".")
            continue;
        if (segment == "..") {
            if (--depth < 0)
                return false;
        } else {
            ++depth;
        }
    }
    return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const bases[] = { "", "/", "/prefix/openai", "/v1", "/api/v1/", "/a%2Fb/v1" };
    static const QList<QStringList> strips
        = { {}, { QStringLiteral("/release"), QStringLiteral("/test") }, { QStringLiteral("/v1") } };
    if (size < 2)
        return 0;
    const char *base = bases[data[0] % (sizeof(bases) / sizeof(bases[0]))];
    const QStringList &strip = strips.at(data[1] % strips.size());
    const QByteArray target(reinterpret_cast<const char *>(data + 2), qsizetype(size - 2));
    for (const char c : target) { // what the parser lets through
        const auto byte = static_cast<unsigned char>(c);
        if (byte <= 0x20 || byte == 0x7f)
            return 0;
    }
    if (!target.startsWith('/'))
        return 0; // ProxyExchange answers 400

    // A copy of what ProxyExchange::start() does (proxyexchange.cpp, "Where it goes"): keep it in sync, or
    // better move that code into UpstreamPath and call it here.
    const qsizetype queryAt = target.indexOf('?');
    const QString clientTarget = QString::fromUtf8(queryAt < 0 ? target : target.left(queryAt));
    g_target = &clientTarget;
    g_path = nullptr;
    QString clientPath;
    if (!UpstreamPath::resolveDotSegments(clientTarget, &clientPath))
        return 0; // 400
    g_path = &clientPath;
    FUZZ_CHECK(clientPath.startsWith(QLatin1Char('/')));
    FUZZ_CHECK(staysInside(clientPath));
    QString again;
    FUZZ_CHECK(UpstreamPath::resolveDotSegments(clientPath, &again));
    FUZZ_CHECK(again == clientPath);

    const QUrl upstream(QStringLiteral("http://upstream.example") + QLatin1String(base));
    FUZZ_CHECK(upstream.isValid());
    QUrl url = upstream;
    const QString joined = UpstreamPath::join(upstream.path(QUrl::FullyEncoded), clientPath, strip);
    g_path = &joined;
    url.setPath(joined, QUrl::TolerantMode);
    if (queryAt >= 0)
        url.setQuery(QString::fromUtf8(target.mid(queryAt + 1)), QUrl::StrictMode);
    if (!url.isValid())
        return 0; // 400
    QString basePath = upstream.path(QUrl::FullyEncoded);
    while (basePath.endsWith(QLatin1Char('/')))
        basePath.chop(1);
    const QString sent = url.path(QUrl::FullyEncoded);
    g_path = &sent;
    FUZZ_CHECK(sent.startsWith(basePath));
    const QString below = sent.mid(basePath.size());
    FUZZ_CHECK(below.isEmpty() || below.startsWith(QLatin1Char('/')));
    FUZZ_CHECK(staysInside(below));
    FUZZ_CHECK(url.host() == QLatin1String("upstream.example"));
    g_target = nullptr;
    g_path = nullptr;
    return 0;
}
