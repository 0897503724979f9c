#include "tokenusage.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QList>

namespace keyrelay {

namespace {

/// Events longer than this are passed on without looking for the usage chunk (it is small).
constexpr qsizetype MaxHeldEvent = 256 * 1024;

/// A token count from the upstream's JSON; -1 for anything that is not a count (a negative, fractional
/// overflow like 1e300 would be undefined behaviour when converted).
qint64 tokenCount(const QJsonValue &value)
{
    if (!value.isDouble())
        return -1;
    const double number = value.toDouble();
    return number >= 0 && number < 1e15 ? qint64(number) : -1;
}

bool usageFromObject(const QJsonObject &root, TokenUsage *result)
{
    QJsonObject usage = root.value(QLatin1String("usage")).toObject();
    if (usage.isEmpty()) // Responses API streams: {"type":"response.completed","response":{"usage":...}}
        usage = root.value(QLatin1String("response")).toObject().value(QLatin1String("usage")).toObject();
    if (usage.isEmpty())
        return false;
    const auto number = [&](const char *a, const char *b) {
        QJsonValue value = usage.value(QLatin1String(a));
        if (value.isUndefined())
            value = usage.value(QLatin1String(b));
        return tokenCount(value);
    };
    TokenUsage found;
    found.prompt = number("prompt_tokens", "input_tokens");
    found.completion = number("completion_tokens", "output_tokens");
    found.total = usage.value(QLatin1String("total_tokens")).isDouble()
        ? tokenCount(usage.value(QLatin1String("total_tokens")))
        : (found.prompt >= 0 && found.completion >= 0 ? found.prompt + found.completion : -1);
    if (found.total < 0 && found.prompt < 0)
        return false;
    *result = found;
    return true;
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
    const QJsonDocument document = QJsonDocument::fromJson(data);
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
        if (m_held.size() > MaxHeldEvent) { // not an event stream we understand: stop holding
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

} // namespace keyrelay
