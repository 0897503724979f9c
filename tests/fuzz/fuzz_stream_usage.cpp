// libFuzzer target: the stream_options KeyRelay adds to a streamed chat request and the usage chunk it
// takes out of the answer again (MessageRewriter::requestStreamUsage, StreamUsageFilter), and the token
// counts read from the answer (StreamUsageTracker).
//
// The first input byte picks where the rest is cut for the stream filter; the rest is used both as a
// request body and as an upstream event stream. Invariants:
//  - requestStreamUsage() changes a body exactly when it is a JSON object with "stream": true that does not
//    already ask for usage; the result is valid JSON with include_usage true and every other member as
//    before;
//  - the filter gives the same bytes however the stream is cut into reads, only ever drops whole usage-only
//    events (a stream without one comes out unchanged), and never grows the stream;
//  - the tracker finds the same counts however the stream is cut into reads, and never holds more than
//    StreamUsageTracker::MaxEventBytes between reads.
#include "fuzzcheck.h"
#include "messagerewriter.h"
#include "tokenusage.h"

#include <QByteArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QList>
#include <QLoggingCategory>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

using keyrelay::MessageRewriter;
using keyrelay::StreamUsageFilter;
using keyrelay::StreamUsageTracker;
using keyrelay::TokenUsage;

namespace {

[[noreturn]] void violated(const char *what, int line)
{
    fuzzsupport::reportViolation("fuzz_stream_usage", what, line);
    std::abort();
}

void checkRequest(const QByteArray &body)
{
    QByteArray changed(body.constData(), body.size());
    const bool added = MessageRewriter::requestStreamUsage(&changed);
    QJsonParseError error {};
    const QJsonDocument document = QJsonDocument::fromJson(body, &error);
    const QJsonObject root = document.object();
    const QJsonValue stream = root.value(QLatin1String("stream"));
    const QJsonValue options = root.value(QLatin1String("stream_options"));
    const bool shouldAdd = error.error == QJsonParseError::NoError && document.isObject() && stream.isBool()
        && stream.toBool()
        && !(options.isObject() && options.toObject().value(QLatin1String("include_usage")).toBool());
    FUZZ_CHECK(added == shouldAdd);
    if (!added) {
        FUZZ_CHECK(changed == body);
        return;
    }
    QJsonParseError outError {};
    const QJsonDocument out = QJsonDocument::fromJson(changed, &outError);
    FUZZ_CHECK(outError.error == QJsonParseError::NoError && out.isObject());
    QJsonObject outRoot = out.object();
    QJsonObject outOptions = outRoot.value(QLatin1String("stream_options")).toObject();
    FUZZ_CHECK(outOptions.value(QLatin1String("include_usage")) == QJsonValue(true));
    // Every other member as it was (stream_options' own other members too).
    QJsonObject before = root;
    QJsonObject beforeOptions = options.toObject();
    beforeOptions.remove(QLatin1String("include_usage"));
    outOptions.remove(QLatin1String("include_usage"));
    FUZZ_CHECK(beforeOptions == outOptions);
    before.remove(QLatin1String("stream_options"));
    outRoot.remove(QLatin1String("stream_options"));
    FUZZ_CHECK(before == outRoot);
}

QByteArray filtered(const QByteArray &stream, qsizetype cut1, qsizetype cut2, int *removed)
{
    StreamUsageFilter filter;
    QByteArray out = filter.feed(stream.left(cut1));
    out += filter.feed(stream.mid(cut1, cut2 - cut1));
    out += filter.feed(stream.mid(cut2));
    out += filter.finish();
    *removed = filter.removedEvents();
    return out;
}

/// What a tracker fed @p stream in three reads found, as one comparable list.
QList<qint64> tracked(const QByteArray &stream, qsizetype cut1, qsizetype cut2)
{
    StreamUsageTracker tracker;
    for (const QByteArray &piece : { stream.left(cut1), stream.mid(cut1, cut2 - cut1), stream.mid(cut2) }) {
        tracker.feed(piece);
        FUZZ_CHECK(tracker.heldBytes() <= StreamUsageTracker::MaxEventBytes);
    }
    tracker.finish();
    FUZZ_CHECK(tracker.heldBytes() == 0);
    const TokenUsage usage = tracker.usage();
    for (const qint64 count :
         { usage.prompt, usage.completion, usage.total, usage.cacheCreation, usage.cacheRead })
        FUZZ_CHECK(count >= -1);
    if (!tracker.hasUsage())
        FUZZ_CHECK(usage.prompt == -1 && usage.completion == -1 && usage.total == -1);
    return { qint64(tracker.hasUsage()), usage.prompt,   usage.completion, usage.total,
             usage.cacheCreation,        usage.cacheRead };
}

void checkStream(const QByteArray &stream, uint8_t cuts)
{
    int removedWhole = 0;
    StreamUsageFilter whole;
    const QByteArray once = whole.feed(stream) + whole.finish();
    removedWhole = whole.removedEvents();
    const qsizetype cut1 = stream.isEmpty() ? 0 : (cuts & 0x0f) * stream.size() / 16;
    const qsizetype cut2 = stream.isEmpty() ? 0 : cut1 + ((cuts >> 4) * (stream.size() - cut1)) / 16;
    int removedPieces = 0;
    const QByteArray pieces = filtered(stream, cut1, cut2, &removedPieces);
    FUZZ_CHECK(once.size() <= stream.size());
    FUZZ_CHECK(removedWhole == 0 || once.size() < stream.size());
    if (removedWhole == 0 && removedPieces == 0)
        FUZZ_CHECK(once == stream && pieces == stream);
    // Cut differently, events longer than the filter holds may pass unfiltered; otherwise the same.
    if (stream.size() < 200 * 1024)
        FUZZ_CHECK(pieces == once && removedPieces == removedWhole);
    FUZZ_CHECK(tracked(stream, cut1, cut2) == tracked(stream, stream.size(), stream.size()));
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
    QLoggingCategory::setFilterRules(QStringLiteral("keyrelay.*=false"));
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const QByteArray rest
        = QByteArray::fromRawData(reinterpret_cast<const char *>(data) + 1, qsizetype(size) - 1);
    checkRequest(rest);
    checkStream(rest, data[0]);
    return 0;
}
