#include "tokenusage.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QList>

namespace keyrelay {

namespace {

/// A token count from the upstream's JSON; -1 for anything that is not a count (a negative, fractional
/// overflow like 1e300 would be undefined behaviour when converted).
qint64 tokenCount(const QJsonValue &value)
{
    if (!value.isDouble())
        return -1;
    const double number = value.toDouble();
    return number >= 0 && number < 1e15 ? qint64(number) : -1;
}

using Counts = StreamUsageTracker::Counts;

/// The counts of a "usage" object; false when it is not an object with at least one count.
bool countsFromUsage(const QJsonValue &value, Counts *counts)
{
    const QJsonObject usage = value.toObject();
    if (usage.isEmpty())
        return false;
    const auto number = [&usage](const char *key) {
        return tokenCount(usage.value(QLatin1String(key)));
    };
    Counts found;
    found.promptTokens = number("prompt_tokens");
    found.completionTokens = number("completion_tokens");
    found.inputTokens = number("input_tokens");
    found.outputTokens = number("output_tokens");
    found.totalTokens = number("total_tokens");
    found.cacheCreationInputTokens = number("cache_creation_input_tokens");
    found.cacheReadInputTokens = number("cache_read_input_tokens");
    for (const char *details : { "prompt_tokens_details", "input_tokens_details" }) {
        const QJsonValue cached
            = usage.value(QLatin1String(details)).toObject().value(QLatin1String("cached_tokens"));
        if (found.cachedTokens < 0)
            found.cachedTokens = tokenCount(cached);
    }
    const bool any = found.promptTokens >= 0 || found.completionTokens >= 0 || found.inputTokens >= 0
        || found.outputTokens >= 0 || found.totalTokens >= 0 || found.cacheCreationInputTokens >= 0
        || found.cacheReadInputTokens >= 0 || found.cachedTokens >= 0;
    if (any)
        *counts = found;
    return any;
}

TokenUsage usageFromCounts(const Counts &counts)
{
    TokenUsage result;
    if (counts.promptTokens >= 0) {
        result.prompt = counts.promptTokens; // Chat Completions: cached tokens are part of it
    } else if (counts.inputTokens >= 0 || counts.cacheCreationInputTokens >= 0
               || counts.cacheReadInputTokens >= 0) {
        // Responses API: input_tokens has the cached ones; Anthropic: input_tokens does not, they come
        // on their own (and only from Anthropic).
        result.prompt = qMax<qint64>(counts.inputTokens, 0) + qMax<qint64>(counts.cacheCreationInputTokens, 0)
            + qMax<qint64>(counts.cacheReadInputTokens, 0);
    }
    result.completion = counts.completionTokens >= 0 ? counts.completionTokens : counts.outputTokens;
    result.total = counts.totalTokens >= 0             ? counts.totalTokens
        : result.prompt >= 0 && result.completion >= 0 ? result.prompt + result.completion
                                                       : -1;
    result.cacheCreation = counts.cacheCreationInputTokens;
    result.cacheRead = counts.cacheReadInputTokens >= 0 ? counts.cacheReadInputTokens : counts.cachedTokens;
    return result;
}

bool usageFromObject(const QJsonObject &root, TokenUsage *result)
{
    Counts counts;
    if (!countsFromUsage(root.value(QLatin1String("usage")), &counts)
        // Responses API streams: {"type":"response.completed","response":{"usage":...}}
        && !countsFromUsage(root.value(QLatin1String("response")).toObject().value(QLatin1String("usage")),
                            &counts)) {
        return false;
    }
    const TokenUsage found = usageFromCounts(counts);
    if (found.total < 0 && found.prompt < 0)
        return false;
    *result = found;
    return true;
}

/// The "data:" lines of one SSE event joined with '\n' (the event's payload).
QByteArray eventData(const QByteArray &event)
{
    QByteArray data;
    const QList<QByteArray> lines = event.split('\n');
    for (const QByteArray &rawLine : lines) {
        const QByteArray line = rawLine.endsWith('\r') ? rawLine.chopped(1) : rawLine;
        if (line.startsWith("data:")) {
            if (!data.isEmpty())
                data += '\n';
            data += line.mid(line.size() > 5 && line.at(5) == ' ' ? 6 : 5);
        }
    }
    return data;
}

/// Where the first complete event of @p data (from @p from) ends, past its blank line; -1 if none.
qsizetype eventEnd(const QByteArray &data, qsizetype from)
{
    for (qsizetype i = data.indexOf('\n', from); i >= 0; i = data.indexOf('\n', i + 1)) {
        if (i + 1 < data.size() && data.at(i + 1) == '\n')
            return i + 2;
        if (i + 2 < data.size() && data.at(i + 1) == '\r' && data.at(i + 2) == '\n')
            return i + 3;
    }
    return -1;
}

/// '"choices"', optional spaces, ':', '[', optional spaces, ']' somewhere in @p event.
bool hasEmptyChoices(const QByteArray &event)
{
    const QByteArray key = QByteArrayLiteral("\"choices\"");
    for (qsizetype at = event.indexOf(key); at >= 0; at = event.indexOf(key, at + 1)) {
        qsizetype pos = at + key.size();
        const auto skipSpace = [&] {
            while (pos < event.size() && (event.at(pos) == ' ' || event.at(pos) == '\t'))
                ++pos;
        };
        skipSpace();
        if (pos >= event.size() || event.at(pos) != ':')
            continue;
        ++pos;
        skipSpace();
        if (pos >= event.size() || event.at(pos) != '[')
            continue;
        ++pos;
        skipSpace();
        if (pos < event.size() && event.at(pos) == ']')
            return true;
    }
    return false;
}

/// The object after the last "usage" key of @p data, parsed on its own: a response body need not be
/// parsed whole for its few usage numbers. False when that is not a plain object.
bool usageFromLastMember(const QByteArray &data, TokenUsage *usage)
{
    const QByteArray key = QByteArrayLiteral("\"usage\"");
    const qsizetype at = data.lastIndexOf(key);
    if (at < 0)
        return false;
    qsizetype pos = at + key.size();
    const auto skipSpace = [&] {
        while (
            pos < data.size()
            && (data.at(pos) == ' ' || data.at(pos) == '\t' || data.at(pos) == '\n' || data.at(pos) == '\r'))
            ++pos;
    };
    skipSpace();
    if (pos >= data.size() || data.at(pos) != ':')
        return false;
    ++pos;
    skipSpace();
    if (pos >= data.size() || data.at(pos) != '{')
        return false;
    const qsizetype begin = pos;
    int depth = 0;
    bool inString = false;
    for (; pos < data.size(); ++pos) {
        const char c = data.at(pos);
        if (inString) {
            if (c == '\\')
                ++pos;
            else if (c == '"')
                inString = false;
        } else if (c == '"') {
            inString = true;
        } else if (c == '{') {
            ++depth;
        } else if (c == '}' && --depth == 0) {
            const QJsonDocument document
                = QJsonDocument::fromJson("{\"usage\":" + data.mid(begin, pos + 1 - begin) + '}');
            return document.isObject() && usageFromObject(document.object(), usage);
        }
    }
    return false;
}

} // namespace

bool parseTokenUsage(const QByteArray &data, bool eventStream, TokenUsage *usage)
{
    if (!eventStream) {
        // A JSON object body: its usage member alone is parsed (a whole answer need not be).
        const QByteArray trimmed = data.trimmed();
        if (trimmed.startsWith('{') && trimmed.endsWith('}') && usageFromLastMember(trimmed, usage))
            return true;
        const QJsonDocument document = QJsonDocument::fromJson(data);
        return document.isObject() && usageFromObject(document.object(), usage);
    }
    const QList<QByteArray> lines = data.split('\n');
    for (qsizetype i = lines.size() - 1; i >= 0; --i) {
        const QByteArray line = lines.at(i).trimmed();
        if (!line.startsWith("data:") || !line.contains("usage"))
            continue;
        const QJsonDocument document = QJsonDocument::fromJson(line.mid(5).trimmed());
        if (document.isObject() && usageFromObject(document.object(), usage))
            return true;
    }
    return false;
}

bool StreamUsageFilter::isUsageOnlyEvent(const QByteArray &event)
{
    if (!hasEmptyChoices(event))
        return false;
    const QJsonDocument document = QJsonDocument::fromJson(eventData(event));
    if (!document.isObject())
        return false;
    const QJsonObject root = document.object();
    TokenUsage usage;
    return root.value(QLatin1String("choices")).toArray().isEmpty() && usageFromObject(root, &usage);
}

QByteArray StreamUsageFilter::feed(const QByteArray &data)
{
    if (m_held.isEmpty())
        m_held = data;
    else
        m_held += data;
    QByteArray out;
    qsizetype begin = 0;
    while (begin < m_held.size()) {
        const qsizetype end = eventEnd(m_held, begin);
        if (end < 0)
            break;
        const QByteArray event = QByteArray::fromRawData(m_held.constData() + begin, end - begin);
        if (isUsageOnlyEvent(event))
            ++m_removed;
        else if (begin == 0 && end == m_held.size() && out.isEmpty())
            out = m_held; // the usual case: one or more whole events, passed on without a copy
        else
            out.append(event);
        begin = end;
    }
    if (begin >= m_held.size()) {
        m_held.clear();
    } else {
        m_held.remove(0, begin);
        if (m_held.size() > StreamUsageTracker::MaxEventBytes) { // not an event stream we understand: stop holding
            out += m_held;
            m_held.clear();
        }
    }
    return out;
}

QByteArray StreamUsageFilter::finish()
{
    QByteArray rest;
    rest.swap(m_held);
    return rest;
}

void StreamUsageTracker::feed(const QByteArray &chunk)
{
    if (chunk.isEmpty())
        return;
    // A separator may have begun in the held bytes (they have none of their own).
    const qsizetype from = qMax<qsizetype>(0, m_held.size() - 3);
    QByteArray buffer;
    if (m_held.isEmpty()) {
        buffer = chunk; // shared, not copied
    } else {
        m_held.append(chunk);
        buffer.swap(m_held);
    }
    qsizetype begin = 0;
    for (qsizetype end = eventEnd(buffer, from); end >= 0; end = eventEnd(buffer, end)) {
        if (m_skipping)
            m_skipping = false; // the end of the oversized event
        else if (end - begin <= MaxEventBytes) // (one that ends in the read that makes it too long)
            takeEvent(QByteArray::fromRawData(buffer.constData() + begin, end - begin));
        begin = end;
    }
    const qsizetype rest = buffer.size() - begin;
    if (m_skipping || rest > MaxEventBytes) {
        // Skipped up to its end; its last bytes are kept in case the separator is split after them.
        m_skipping = true;
        m_held = buffer.right(qMin<qsizetype>(rest, 3));
    } else if (rest > 0) {
        m_held = begin == 0 ? buffer : buffer.mid(begin);
    } else {
        m_held.clear();
    }
}

void StreamUsageTracker::finish()
{
    if (!m_skipping && !m_held.isEmpty())
        takeEvent(m_held);
    m_held.clear();
    m_skipping = false;
}

TokenUsage StreamUsageTracker::usage() const
{
    return usageFromCounts(m_counts);
}

bool StreamUsageTracker::hasUsage() const
{
    const TokenUsage found = usage();
    return found.prompt >= 0 || found.completion >= 0 || found.total >= 0;
}

void StreamUsageTracker::takeEvent(const QByteArray &event)
{
    if (!event.contains("\"usage\""))
        return;
    const QJsonDocument document = QJsonDocument::fromJson(eventData(event));
    if (!document.isObject())
        return;
    const QJsonObject root = document.object();
    Counts counts;
    // Chat Completions chunks and Anthropic's message_delta; the Responses API; Anthropic's message_start.
    if (!countsFromUsage(root.value(QLatin1String("usage")), &counts)
        && !countsFromUsage(root.value(QLatin1String("response")).toObject().value(QLatin1String("usage")),
                            &counts)
        && !countsFromUsage(root.value(QLatin1String("message")).toObject().value(QLatin1String("usage")),
                            &counts)) {
        return;
    }
    // Each count as last reported (message_delta repeats only some); a total only with the counts it
    // came with.
    const auto merge = [](qint64 reported, qint64 *kept) {
        if (reported >= 0)
            *kept = reported;
    };
    merge(counts.promptTokens, &m_counts.promptTokens);
    merge(counts.completionTokens, &m_counts.completionTokens);
    merge(counts.inputTokens, &m_counts.inputTokens);
    merge(counts.outputTokens, &m_counts.outputTokens);
    merge(counts.cacheCreationInputTokens, &m_counts.cacheCreationInputTokens);
    merge(counts.cacheReadInputTokens, &m_counts.cacheReadInputTokens);
    merge(counts.cachedTokens, &m_counts.cachedTokens);
    m_counts.totalTokens = counts.totalTokens;
}

} // namespace keyrelay
