// libFuzzer target: MessageRewriter::rewrite / modelOf / appliesTo on arbitrary request bodies.
//
// The input is the body as a client sends it (the corpus is plain JSON). Each input is rewritten with a
// few option sets, and every result is checked against an oracle built on QJsonDocument:
//  - rewrite never crashes, never touches the input, and says InvalidJson exactly when QJsonDocument does;
//  - it says Rewritten exactly when the documented rule applies ([S,a,b,c,d] -> [a,S,b,c,d]);
//  - a rewritten body is valid JSON with the same members, the same number of messages, the same multiset of
//    messages (compared serialised) and the documented order;
//  - a body that is not rewritten is left alone (result.body stays empty, the caller forwards the original).
#include "fuzzcheck.h"
#include "messagerewriter.h"

#include <QByteArray>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QJsonValue>
#include <QList>
#include <QLoggingCategory>
#include <QString>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

using keyrelay::MessageRewriter;
using keyrelay::RewriteOptions;

namespace {

// What violated() prints along with the broken invariant.
const RewriteOptions *g_options = nullptr;
const MessageRewriter::Result *g_result = nullptr;

[[noreturn]] void violated(const char *what, int line)
{
    fuzzsupport::reportViolation("fuzz_message_rewriter", what, line);
    if (g_options) {
        std::fprintf(stderr, "options: enabled=%d threshold=%d depth=%d\n", int(g_options->enabled),
                     g_options->threshold, g_options->depth);
    }
    if (g_result) {
        std::fprintf(stderr, "outcome=%d, rewritten body (%lld bytes): %.2000s\n", int(g_result->outcome),
                     static_cast<long long>(g_result->body.size()), g_result->body.constData());
    }
    std::abort();
}

QByteArray serialised(const QJsonValue &value)
{
    return QJsonDocument(QJsonArray { value }).toJson(QJsonDocument::Compact);
}

QList<QByteArray> serialisedElements(const QJsonArray &array)
{
    QList<QByteArray> out;
    out.reserve(array.size());
    for (const QJsonValue &value : array)
        out.append(serialised(value));
    return out;
}

void check(const QByteArray &body, const RewriteOptions &options)
{
    const QByteArray original(body.constData(), body.size()); // a deep copy
    g_options = &options;
    g_result = nullptr;
    const MessageRewriter::Result result = MessageRewriter::rewrite(body, options);
    g_result = &result;
    FUZZ_CHECK(body == original);

    QJsonParseError parseError {};
    const QJsonDocument document = QJsonDocument::fromJson(body, &parseError);
    if (parseError.error != QJsonParseError::NoError) {
        FUZZ_CHECK(result.outcome == MessageRewriter::Outcome::InvalidJson);
        FUZZ_CHECK(!result.error.isEmpty());
        FUZZ_CHECK(result.body.isEmpty());
        return;
    }
    FUZZ_CHECK(result.outcome != MessageRewriter::Outcome::InvalidJson);
    FUZZ_CHECK(result.model == MessageRewriter::modelOf(body));
    if (!document.isObject()) {
        FUZZ_CHECK(result.outcome == MessageRewriter::Outcome::NotApplicable);
        FUZZ_CHECK(result.body.isEmpty());
        FUZZ_CHECK(result.model.isEmpty());
        return;
    }
    const QJsonObject root = document.object();
    FUZZ_CHECK(result.model == root.value(QLatin1String("model")).toString());

    // The documented rule, independently of the implementation.
    const QJsonValue messagesValue = root.value(QLatin1String("messages"));
    const QJsonArray messages = messagesValue.toArray();
    const qsizetype count = messages.size();
    // Bodies holding a raw U+FEFF are left alone on purpose (Qt 6.4 drops it from JSON strings, so
    // what QJsonDocument says about them would not match the bytes).
    const bool applies = options.enabled && !body.contains("\xEF\xBB\xBF") && messagesValue.isArray()
        && options.depth >= 1 && count > options.threshold && count - 1 > options.depth
        && messages.at(0).isObject()
        && messages.at(0)
                .toObject()
                .value(QLatin1String("role"))
                .toString()
                .compare(QLatin1String("system"), Qt::CaseInsensitive)
            == 0;
    if (!applies) {
        FUZZ_CHECK(result.outcome == MessageRewriter::Outcome::NotApplicable);
        FUZZ_CHECK(result.body.isEmpty());
        return;
    }
    FUZZ_CHECK(result.outcome == MessageRewriter::Outcome::Rewritten);

    QJsonParseError outError {};
    const QJsonDocument out = QJsonDocument::fromJson(result.body, &outError);
    FUZZ_CHECK(outError.error == QJsonParseError::NoError);
    FUZZ_CHECK(out.isObject());
    QJsonObject outRoot = out.object();
    const QJsonValue outMessagesValue = outRoot.value(QLatin1String("messages"));
    FUZZ_CHECK(outMessagesValue.isArray());
    const QJsonArray outMessages = outMessagesValue.toArray();
    FUZZ_CHECK(outMessages.size() == count);

    // Same multiset of messages.
    QList<QByteArray> before = serialisedElements(messages);
    QList<QByteArray> after = serialisedElements(outMessages);
    std::sort(before.begin(), before.end());
    std::sort(after.begin(), after.end());
    FUZZ_CHECK(before == after);

    // In the documented order: everything before the last `depth` messages, the system message, then those.
    const qsizetype movedTo = count - options.depth;
    QJsonArray expected;
    for (qsizetype i = 1; i < movedTo; ++i)
        expected.append(messages.at(i));
    expected.append(messages.at(0));
    for (qsizetype i = movedTo; i < count; ++i)
        expected.append(messages.at(i));
    FUZZ_CHECK(serialisedElements(outMessages) == serialisedElements(expected));

    // Nothing else changed.
    QJsonObject rootRest = root;
    rootRest.remove(QLatin1String("messages"));
    outRoot.remove(QLatin1String("messages"));
    FUZZ_CHECK(QJsonDocument(rootRest).toJson(QJsonDocument::Compact)
               == QJsonDocument(outRoot).toJson(QJsonDocument::Compact));
    g_result = nullptr;
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
    QLoggingCategory::setFilterRules(QStringLiteral("keyrelay.*=false"));
    return 0;
}

/// MessageRewriter::replaceModel (provider routing): it changes a body exactly when it has a string "model",
/// the result is valid JSON whose "model" is the new name and whose every other member is unchanged, and only
/// the bytes before that string are the original's.
void checkReplaceModel(const QByteArray &body)
{
    const QString name = QStringLiteral("renamed \"model\" \\ \u00e9");
    QByteArray changed(body.constData(), body.size());
    const bool replaced = MessageRewriter::replaceModel(&changed, name);
    const QJsonDocument before = QJsonDocument::fromJson(body);
    const bool hasStringModel = before.isObject() && before.object().value(QLatin1String("model")).isString();
    FUZZ_CHECK(!replaced || hasStringModel); // it may refuse a spelling it cannot splice, never invent one
    if (!replaced) {
        FUZZ_CHECK(changed == body);
        return;
    }
    const QJsonDocument after = QJsonDocument::fromJson(changed);
    FUZZ_CHECK(after.isObject());
    QJsonObject expected = before.object();
    expected.insert(QLatin1String("model"), name);
    FUZZ_CHECK(after.object() == expected);
    // Only the one string changed: the bytes before it are the original's (the splice starts at the value).
    const qsizetype at = changed.indexOf(QJsonDocument(QJsonArray { name }).toJson(QJsonDocument::Compact).mid(1).chopped(1));
    FUZZ_CHECK(at > 0 && changed.left(at) == body.left(at));
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    // fromRawData: the scanner reads libFuzzer's exact-size buffer, so AddressSanitizer sees any read
    // past the end of the body.
    const QByteArray body = QByteArray::fromRawData(reinterpret_cast<const char *>(data), qsizetype(size));

    RewriteOptions defaults;
    check(body, defaults);
    RewriteOptions disabled;
    disabled.enabled = false;
    check(body, disabled);
    RewriteOptions shallow;
    shallow.threshold = 0;
    shallow.depth = 1;
    check(body, shallow);
    RewriteOptions noDepth;
    noDepth.threshold = 1;
    noDepth.depth = 0;
    check(body, noDepth);
    RewriteOptions fromSize; // varies with the input, covers other thresholds and depths
    fromSize.threshold = int(size % 7) - 1;
    fromSize.depth = int((size / 7) % 9) - 1;
    check(body, fromSize);

    (void)MessageRewriter::modelOf(body);
    checkReplaceModel(body);
    const QByteArray method = body.left(8);
    (void)MessageRewriter::appliesTo(method, QString::fromUtf8(body));
    return 0;
}
