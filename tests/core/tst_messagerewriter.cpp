// Unit tests of MessageRewriter: which requests it touches, the reorder rule, and byte-exactness.
#include "messagerewriter.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QRandomGenerator>
#include <QtTest>

using keyrelay::MessageRewriter;
using keyrelay::RewriteOptions;
using Outcome = keyrelay::MessageRewriter::Outcome;

Q_DECLARE_METATYPE(keyrelay::MessageRewriter::Outcome)

namespace {

// {"role":R,"content":C}
QByteArray msg(const char *role, const char *content)
{
    return QByteArrayLiteral("{\"role\":\"") + role + QByteArrayLiteral("\",\"content\":\"") + content
        + QByteArrayLiteral("\"}");
}

QByteArray chat(const QList<QByteArray> &messages, const QByteArray &model = QByteArrayLiteral("gpt-4o"))
{
    return QByteArrayLiteral("{\"model\":\"") + model + QByteArrayLiteral("\",\"messages\":[")
        + messages.join(',') + QByteArrayLiteral("]}");
}

QJsonObject parseObject(const QByteArray &body)
{
    QJsonParseError error {};
    const QJsonDocument document = QJsonDocument::fromJson(body, &error);
    if (error.error != QJsonParseError::NoError || !document.isObject())
        return {};
    return document.object();
}

// The order the rule asks for, computed independently of the implementation under test.
QJsonArray expectedOrder(const QJsonArray &input, int depth)
{
    QJsonArray out;
    const qsizetype count = input.size();
    for (qsizetype i = 1; i < count - depth; ++i)
        out.append(input.at(i));
    out.append(input.at(0));
    for (qsizetype i = count - depth; i < count; ++i)
        out.append(input.at(i));
    return out;
}

} // namespace

class tst_MessageRewriter : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void rewrite_data();
    void rewrite();
    void byteExact_data();
    void byteExact();
    void randomisedSpacingAndElements();
    void escapedMessagesKeyFallsBackToReserialising();
    void duplicateEscapedMessagesKeyLastWins();
    void rawByteOrderMarkLeftAlone();
    void nestedMessagesMemberIsNotTheTopLevelOne();
    void invalidJsonHasAMessage();
    void resultIsStableWhenRewrittenTwice();
    void appliesTo_data();
    void appliesTo();
    void modelOf_data();
    void modelOf();
};

void tst_MessageRewriter::rewrite_data()
{
    QTest::addColumn<QByteArray>("body");
    QTest::addColumn<bool>("enabled");
    QTest::addColumn<int>("threshold");
    QTest::addColumn<int>("depth");
    QTest::addColumn<Outcome>("outcome");
    QTest::addColumn<QByteArray>("expected"); // exact new body when Rewritten
    QTest::addColumn<QString>("model");

    const QByteArray S = msg("system", "S");
    const QByteArray a = msg("user", "a");
    const QByteArray b = msg("assistant", "b");
    const QByteArray c = msg("user", "c");
    const QByteArray d = msg("assistant", "d");
    const QString gpt = QStringLiteral("gpt-4o");

    QTest::newRow("S,a,b,c,d -> a,S,b,c,d")
        << chat({ S, a, b, c, d }) << true << 4 << 3 << Outcome::Rewritten << chat({ a, S, b, c, d }) << gpt;

    QList<QByteArray> ten { S };
    QList<QByteArray> tenExpected;
    for (int i = 1; i <= 9; ++i)
        ten.append(msg(i % 2 ? "user" : "assistant", QByteArray::number(i).constData()));
    tenExpected = ten.mid(1, 6);
    tenExpected << S << ten.mid(7);
    QTest::newRow("S + 9 messages: S before the last 3")
        << chat(ten) << true << 4 << 3 << Outcome::Rewritten << chat(tenExpected) << gpt;

    QTest::newRow("exactly threshold (4) untouched")
        << chat({ S, a, b, c }) << true << 4 << 3 << Outcome::NotApplicable << QByteArray() << gpt;
    QTest::newRow("no system message")
        << chat({ a, b, c, d, a }) << true << 4 << 3 << Outcome::NotApplicable << QByteArray() << gpt;
    QTest::newRow("system not first")
        << chat({ a, S, b, c, d }) << true << 4 << 3 << Outcome::NotApplicable << QByteArray() << gpt;
    QTest::newRow("developer role is not system") << chat({ msg("developer", "S"), a, b, c, d }) << true << 4
                                                  << 3 << Outcome::NotApplicable << QByteArray() << gpt;

    const QByteArray capS = msg("System", "S");
    QTest::newRow("role System (case-insensitive)")
        << chat({ capS, a, b, c, d }) << true << 4 << 3 << Outcome::Rewritten << chat({ a, capS, b, c, d })
        << gpt;
    const QByteArray upperS = msg("SYSTEM", "S");
    QTest::newRow("role SYSTEM (case-insensitive)")
        << chat({ upperS, a, b, c, d }) << true << 4 << 3 << Outcome::Rewritten
        << chat({ a, upperS, b, c, d }) << gpt;

    QTest::newRow("first element is a string")
        << chat({ QByteArrayLiteral("\"system\""), a, b, c, d }) << true << 4 << 3 << Outcome::NotApplicable
        << QByteArray() << gpt;
    QTest::newRow("first element is an array")
        << chat({ QByteArrayLiteral("[{\"role\":\"system\"}]"), a, b, c, d }) << true << 4 << 3
        << Outcome::NotApplicable << QByteArray() << gpt;
    QTest::newRow("first element is null") << chat({ QByteArrayLiteral("null"), a, b, c, d }) << true << 4
                                           << 3 << Outcome::NotApplicable << QByteArray() << gpt;
    QTest::newRow("role is not a string")
        << chat({ QByteArrayLiteral("{\"role\":1,\"content\":\"S\"}"), a, b, c, d }) << true << 4 << 3
        << Outcome::NotApplicable << QByteArray() << gpt;

    QTest::newRow("messages is an object")
        << QByteArrayLiteral(R"({"model":"m1","messages":{"0":{"role":"system"},"1":1,"2":2,"3":3,"4":4}})")
        << true << 4 << 3 << Outcome::NotApplicable << QByteArray() << QStringLiteral("m1");
    QTest::newRow("messages is a string")
        << QByteArrayLiteral(R"({"model":"m1","messages":"[1,2,3,4,5]"})") << true << 4 << 3
        << Outcome::NotApplicable << QByteArray() << QStringLiteral("m1");
    QTest::newRow("missing messages") << QByteArrayLiteral(R"({"model":"m2","prompt":"hi"})") << true << 4
                                      << 3 << Outcome::NotApplicable << QByteArray() << QStringLiteral("m2");
    QTest::newRow("empty object") << QByteArrayLiteral("{}") << true << 4 << 3 << Outcome::NotApplicable
                                  << QByteArray() << QString();
    QTest::newRow("empty messages array") << QByteArrayLiteral(R"({"messages":[]})") << true << 0 << 0
                                          << Outcome::NotApplicable << QByteArray() << QString();

    QTest::newRow("empty body is not JSON")
        << QByteArray() << true << 4 << 3 << Outcome::InvalidJson << QByteArray() << QString();
    QTest::newRow("invalid JSON") << QByteArrayLiteral(R"({"model":"x","messages":[)") << true << 4 << 3
                                  << Outcome::InvalidJson << QByteArray() << QString();
    QTest::newRow("trailing garbage") << QByteArray(chat({ S, a, b, c, d }) + QByteArrayLiteral("x")) << true
                                      << 4 << 3 << Outcome::InvalidJson << QByteArray() << QString();
    QTest::newRow("invalid JSON even when disabled") << QByteArrayLiteral("not json") << false << 4 << 3
                                                     << Outcome::InvalidJson << QByteArray() << QString();

    QTest::newRow("top-level array") << QByteArray(QByteArrayLiteral("[") + S + ',' + a + ',' + b + ',' + c
                                                   + ',' + d + ']')
                                     << true << 4 << 3 << Outcome::NotApplicable << QByteArray() << QString();
    // QJsonDocument (Qt 6.4) only accepts an object or an array at the top, so a bare scalar is "invalid".
    QTest::newRow("top-level string") << QByteArrayLiteral("\"hello\"") << true << 4 << 3
                                      << Outcome::InvalidJson << QByteArray() << QString();

    QTest::newRow("threshold 2 depth 1: S,a,b -> a,S,b")
        << chat({ S, a, b }) << true << 2 << 1 << Outcome::Rewritten << chat({ a, S, b }) << gpt;
    QTest::newRow("threshold 2 depth 1: S,a,b,c,d -> a,b,c,S,d")
        << chat({ S, a, b, c, d }) << true << 2 << 1 << Outcome::Rewritten << chat({ a, b, c, S, d }) << gpt;
    QTest::newRow("threshold 1 depth 2: S,a,b,c -> a,S,b,c")
        << chat({ S, a, b, c }) << true << 1 << 2 << Outcome::Rewritten << chat({ a, S, b, c }) << gpt;
    QTest::newRow("threshold 2 depth 1, only 2 messages")
        << chat({ S, a }) << true << 2 << 1 << Outcome::NotApplicable << QByteArray() << gpt;
    QTest::newRow("depth == count-1 untouched")
        << chat({ S, a, b, c, d }) << true << 1 << 4 << Outcome::NotApplicable << QByteArray() << gpt;
    QTest::newRow("depth > count-1 untouched")
        << chat({ S, a, b, c, d }) << true << 1 << 10 << Outcome::NotApplicable << QByteArray() << gpt;

    QTest::newRow("disabled: model still read")
        << chat({ S, a, b, c, d }, QByteArrayLiteral("gpt-4.1-mini")) << false << 4 << 3
        << Outcome::NotApplicable << QByteArray() << QStringLiteral("gpt-4.1-mini");
    QTest::newRow("model not a string") << QByteArrayLiteral(R"({"model":42,"messages":[]})") << true << 4
                                        << 3 << Outcome::NotApplicable << QByteArray() << QString();
}

void tst_MessageRewriter::rewrite()
{
    QFETCH(QByteArray, body);
    QFETCH(bool, enabled);
    QFETCH(int, threshold);
    QFETCH(int, depth);
    QFETCH(Outcome, outcome);
    QFETCH(QByteArray, expected);
    QFETCH(QString, model);

    RewriteOptions options;
    options.enabled = enabled;
    options.threshold = threshold;
    options.depth = depth;
    const MessageRewriter::Result result = MessageRewriter::rewrite(body, options);

    QCOMPARE(result.outcome, outcome);
    QCOMPARE(result.model, model);
    if (outcome == Outcome::InvalidJson) {
        QVERIFY(!result.error.isEmpty());
        QVERIFY(result.body.isEmpty());
        return;
    }
    QVERIFY(result.error.isEmpty());
    if (outcome == Outcome::NotApplicable) {
        QVERIFY(result.body.isEmpty());
        return;
    }

    // Semantically: the messages are the input's, in the rule's order, and nothing else changed.
    const QJsonObject in = parseObject(body);
    const QJsonObject out = parseObject(result.body);
    QVERIFY(!out.isEmpty());
    const QJsonArray inMessages = in.value(QLatin1String("messages")).toArray();
    const QJsonArray outMessages = out.value(QLatin1String("messages")).toArray();
    QCOMPARE(outMessages.size(), inMessages.size());
    QCOMPARE(outMessages, expectedOrder(inMessages, depth));
    QCOMPARE(outMessages.at(outMessages.size() - depth - 1)
                 .toObject()
                 .value(QLatin1String("role"))
                 .toString()
                 .toLower(),
             QStringLiteral("system"));
    QJsonObject inRest = in;
    QJsonObject outRest = out;
    inRest.remove(QLatin1String("messages"));
    outRest.remove(QLatin1String("messages"));
    QCOMPARE(outRest, inRest);
    QCOMPARE(parseObject(expected), out);

    // Byte-exactly.
    QCOMPARE(result.body, expected);
}

void tst_MessageRewriter::byteExact_data()
{
    QTest::addColumn<QByteArray>("body");
    QTest::addColumn<QByteArray>("expected");

    // Pretty-printed: each separator stays where it was (after the same slot).
    QTest::newRow("whitespace and newlines, key order z before a")
        << QByteArrayLiteral("{\n"
                             "  \"z\": 1,\n"
                             "  \"messages\" : [\n"
                             "    {\"role\": \"system\", \"content\": \"S\"},\n"
                             "    {\"role\":\"user\",\"content\":\"a\"} ,\n"
                             "\t{\"role\":\"assistant\",\"content\":\"b\"},\r\n"
                             "    {\"content\":\"c\", \"role\":\"user\"},\n"
                             "    {\"role\":\"assistant\",\"content\":\"d\"}\n"
                             "  ],\n"
                             "  \"a\": 2\n"
                             "}\n")
        << QByteArrayLiteral("{\n"
                             "  \"z\": 1,\n"
                             "  \"messages\" : [\n"
                             "    {\"role\":\"user\",\"content\":\"a\"},\n"
                             "    {\"role\": \"system\", \"content\": \"S\"} ,\n"
                             "\t{\"role\":\"assistant\",\"content\":\"b\"},\r\n"
                             "    {\"content\":\"c\", \"role\":\"user\"},\n"
                             "    {\"role\":\"assistant\",\"content\":\"d\"}\n"
                             "  ],\n"
                             "  \"a\": 2\n"
                             "}\n");

    QTest::newRow("numbers, escapes, nested values, tricky strings")
        << QByteArrayLiteral(
               R"({"temperature":1.50,"max_tokens":1e3,"n":100,"seed":1152921504606846976,"messages":[)"
               R"({"role":"system","content":"caf\u00e9 \ud83d\ude00","weight":1.50},)"
               R"({"role":"user","content":"a ] } \" [ { ,","n":1e3},)"
               R"({"role":"user","content":[{"type":"text","text":"]}"},{"type":"image_url","image_url":{"url":"x"}}]},)"
               R"({"role":"assistant","content":null,"tool_calls":[{"id":"c1","function":{"arguments":"{\"a\":[1,2]}"}}]},)"
               R"({"role":"user","content":"d\\"}],"stream":true,"stop":["]","}"]})")
        << QByteArrayLiteral(
               R"({"temperature":1.50,"max_tokens":1e3,"n":100,"seed":1152921504606846976,"messages":[)"
               R"({"role":"user","content":"a ] } \" [ { ,","n":1e3},)"
               R"({"role":"system","content":"caf\u00e9 \ud83d\ude00","weight":1.50},)"
               R"({"role":"user","content":[{"type":"text","text":"]}"},{"type":"image_url","image_url":{"url":"x"}}]},)"
               R"({"role":"assistant","content":null,"tool_calls":[{"id":"c1","function":{"arguments":"{\"a\":[1,2]}"}}]},)"
               R"({"role":"user","content":"d\\"}],"stream":true,"stop":["]","}"]})");

    QTest::newRow("messages first, members after it untouched")
        << QByteArrayLiteral(
               R"({"messages":[{"role":"system","content":"S"},1,2.0,-3e-2,"x"],"model":"m","x":{"messages":[]}})")
        << QByteArrayLiteral(
               R"({"messages":[1,{"role":"system","content":"S"},2.0,-3e-2,"x"],"model":"m","x":{"messages":[]}})");

    QTest::newRow("a string before messages spells a fake messages member")
        << QByteArrayLiteral(
               R"({"note":"\"messages\":[1,2]","messages":[{"role":"system"},true,false,null,{"k":"]"}]})")
        << QByteArrayLiteral(
               R"({"note":"\"messages\":[1,2]","messages":[true,{"role":"system"},false,null,{"k":"]"}]})");

    // Like QJsonDocument, the rewrite uses the last of duplicate members; the first is left as it was.
    QTest::newRow("duplicate messages member: the last one counts")
        << QByteArrayLiteral(
               R"({"messages":[{"role":"system","content":"X"},1,2,3,4],"messages":[{"role":"system","content":"S"},)"
               R"("a","b","c","d"]})")
        << QByteArrayLiteral(
               R"({"messages":[{"role":"system","content":"X"},1,2,3,4],"messages":["a",{"role":"system","content":"S"},)"
               R"("b","c","d"]})");

    QTest::newRow("raw UTF-8 and a large body")
        << QByteArray(
               QByteArrayLiteral(R"({"messages":[{"role":"system","content":"Ünïcödé ✓ 日本"},)")
               + QByteArrayLiteral(R"({"role":"user","content":")") + QByteArray(100000, 'x')
               + QByteArrayLiteral(R"("},{"role":"user","content":"b"},{"role":"user","content":"c"},)")
               + QByteArrayLiteral(R"({"role":"user","content":"d"}]})"))
        << QByteArray(QByteArrayLiteral(R"({"messages":[{"role":"user","content":")")
                      + QByteArray(100000, 'x')
                      + QByteArrayLiteral(R"("},{"role":"system","content":"Ünïcödé ✓ 日本"},)")
                      + QByteArrayLiteral(R"({"role":"user","content":"b"},{"role":"user","content":"c"},)")
                      + QByteArrayLiteral(R"({"role":"user","content":"d"}]})"));
}

void tst_MessageRewriter::byteExact()
{
    QFETCH(QByteArray, body);
    QFETCH(QByteArray, expected);

    const MessageRewriter::Result result = MessageRewriter::rewrite(body, RewriteOptions {});
    QCOMPARE(result.outcome, Outcome::Rewritten);

    // Parsed: same members, messages in the rule's order.
    const QJsonObject in = parseObject(body);
    const QJsonObject out = parseObject(result.body);
    QVERIFY(!out.isEmpty());
    QCOMPARE(out.value(QLatin1String("messages")).toArray(),
             expectedOrder(in.value(QLatin1String("messages")).toArray(), 3));
    QCOMPARE(out.keys(), in.keys());
    QCOMPARE(parseObject(expected), out);

    // Byte for byte: only the order of the elements changed.
    QCOMPARE(result.body.size(), body.size());
    QCOMPARE(result.body, expected);
}

void tst_MessageRewriter::randomisedSpacingAndElements()
{
    // Bodies built from tricky elements and random whitespace; the expected bytes are assembled
    // independently: the elements move, every separator stays in its slot.
    const QList<QByteArray> pool {
        QByteArrayLiteral(R"({"role":"user","content":"plain"})"),
        QByteArrayLiteral(R"({ "content" : "] } [ {" , "role" : "assistant" })"),
        QByteArrayLiteral(R"({"role":"user","content":"esc \" \\ \/ \u005d \n"})"),
        QByteArrayLiteral(
            R"({"role":"tool","content":[{"type":"text","text":"{\"a\":[1,{}]}"}],"n":-0.5e-3})"),
        QByteArrayLiteral(R"([1,[2,[3]],{"x":[]}])"),
        QByteArrayLiteral("\"a string, with a comma\""),
        QByteArrayLiteral("12345678901234567890"),
        QByteArrayLiteral("true"),
        QByteArrayLiteral("null"),
        QByteArrayLiteral("{}"),
        QByteArrayLiteral("[]"),
    };
    const QList<QByteArray> systems {
        QByteArrayLiteral(R"({"role":"system","content":"S"})"),
        QByteArrayLiteral(R"({ "content":"be brief ]}", "role" : "SYSTEM" , "name":"x" })"),
    };
    const char spaces[] = { ' ', '\t', '\n', '\r' };
    QRandomGenerator random(4242);
    const auto space = [&random, &spaces] {
        QByteArray out;
        const int n = int(random.bounded(3));
        for (int i = 0; i < n; ++i)
            out.append(spaces[random.bounded(4)]);
        return out;
    };

    for (int round = 0; round < 300; ++round) {
        const int count = 2 + int(random.bounded(12));
        const int threshold = 1 + int(random.bounded(6));
        const int depth = 1 + int(random.bounded(6));
        QList<QByteArray> elements { systems.at(int(random.bounded(2))) };
        for (int i = 1; i < count; ++i)
            elements.append(pool.at(int(random.bounded(int(pool.size())))));
        QList<QByteArray> separators; // separators.at(i) follows element i
        for (int i = 0; i < count; ++i)
            separators.append(i + 1 < count ? space() + ',' + space() : space());

        const QByteArray head = QByteArrayLiteral("{") + space() + QByteArrayLiteral(R"("model":"m",)")
            + space() + QByteArrayLiteral(R"("messages")") + space() + ':' + space() + '[' + space();
        const QByteArray tail
            = QByteArrayLiteral("]") + space() + QByteArrayLiteral(R"(,"z":[1.0])") + space() + '}';
        QByteArray body = head;
        for (int i = 0; i < count; ++i)
            body += elements.at(i) + separators.at(i);
        body += tail;

        const bool applies = count > threshold && count - 1 > depth;
        RewriteOptions options;
        options.threshold = threshold;
        options.depth = depth;
        const MessageRewriter::Result result = MessageRewriter::rewrite(body, options);
        const QByteArray context = "round " + QByteArray::number(round) + ": " + body;
        QVERIFY2(result.model == QStringLiteral("m"), context.constData());
        if (!applies) {
            QVERIFY2(result.outcome == Outcome::NotApplicable, context.constData());
            continue;
        }
        QList<QByteArray> order = elements.mid(1, count - depth - 1);
        order.append(elements.at(0));
        order += elements.mid(count - depth);
        QByteArray expected = head;
        for (int i = 0; i < count; ++i)
            expected += order.at(i) + separators.at(i);
        expected += tail;
        QVERIFY2(result.outcome == Outcome::Rewritten, context.constData());
        QVERIFY2(result.body == expected, context.constData());
    }
}

void tst_MessageRewriter::escapedMessagesKeyFallsBackToReserialising()
{
    // "messag\u0065s" is "messages" for a JSON parser but not for the byte scanner.
    const QByteArray body = QByteArrayLiteral(
        R"({"model":"m","messag\u0065s":[{"role":"system","content":"S"},{"role":"user","content":"a"},)"
        R"({"role":"user","content":"b"},{"role":"user","content":"c"},{"role":"user","content":"d"}]})");
    const MessageRewriter::Result result = MessageRewriter::rewrite(body, RewriteOptions {});
    QCOMPARE(result.outcome, Outcome::Rewritten);
    QCOMPARE(result.model, QStringLiteral("m"));
    const QJsonObject in = parseObject(body);
    const QJsonObject out = parseObject(result.body);
    QCOMPARE(out.value(QLatin1String("messages")).toArray(),
             expectedOrder(in.value(QLatin1String("messages")).toArray(), 3));
    QCOMPARE(out.value(QLatin1String("model")).toString(), QStringLiteral("m"));
}

void tst_MessageRewriter::duplicateEscapedMessagesKeyLastWins()
{
    // Found by fuzzing: QJsonDocument takes the last "messages" in any spelling; so must the splice.
    const QByteArray first = chat(
        { msg("system", "S"), msg("user", "a"), msg("user", "b"), msg("user", "c"), msg("user", "d") });
    QByteArray body = first;
    body.chop(1); // drop the closing brace
    body += R"(,"messag\u0065s":[{"role":"system","content":"T"},{"role":"user","content":"1"},)"
            R"({"role":"user","content":"2"},{"role":"user","content":"3"},{"role":"user","content":"4"}]})";
    const MessageRewriter::Result result = MessageRewriter::rewrite(body, RewriteOptions {});
    QCOMPARE(result.outcome, Outcome::Rewritten);
    const QJsonObject in = parseObject(body);
    const QJsonObject out = parseObject(result.body);
    QCOMPARE(out.value(QLatin1String("messages")).toArray(),
             expectedOrder(in.value(QLatin1String("messages")).toArray(), 3));
    QCOMPARE(out.value(QLatin1String("messages")).toArray().at(1).toObject().value(QLatin1String("content")),
             QJsonValue(QStringLiteral("T")));
}

void tst_MessageRewriter::rawByteOrderMarkLeftAlone()
{
    // Found by fuzzing: Qt 6.4 drops a raw U+FEFF at the start of JSON strings, so neither the role
    // check nor a re-serialised body can be trusted: such bodies are forwarded as they are.
    const QByteArray body = chat({ msg("system", "\xEF\xBB\xBFS"), msg("user", "a"), msg("user", "b"),
                                   msg("user", "c"), msg("user", "d") });
    QVERIFY(body.contains("\xEF\xBB\xBF"));
    const MessageRewriter::Result result = MessageRewriter::rewrite(body, RewriteOptions {});
    QVERIFY(result.outcome != Outcome::Rewritten);
    QVERIFY(result.body.isEmpty());
}

void tst_MessageRewriter::nestedMessagesMemberIsNotTheTopLevelOne()
{
    // A nested "messages" array that comes first must not be the one reordered.
    const QByteArray body = QByteArrayLiteral(
        R"({"metadata":{"messages":[{"role":"system"},1,2,3,4]},"messages":[{"role":"system","content":"S"},)"
        R"("a","b","c","d"]})");
    const QByteArray expected = QByteArrayLiteral(
        R"({"metadata":{"messages":[{"role":"system"},1,2,3,4]},"messages":["a",{"role":"system","content":"S"},)"
        R"("b","c","d"]})");
    const MessageRewriter::Result result = MessageRewriter::rewrite(body, RewriteOptions {});
    QCOMPARE(result.outcome, Outcome::Rewritten);
    QCOMPARE(result.body, expected);
}

void tst_MessageRewriter::invalidJsonHasAMessage()
{
    const MessageRewriter::Result result
        = MessageRewriter::rewrite(QByteArrayLiteral("{\"messages\": [1, 2,]}"), RewriteOptions {});
    QCOMPARE(result.outcome, Outcome::InvalidJson);
    QVERIFY(result.error.contains(QLatin1String("JSON")));
    QVERIFY2(result.error.contains(QLatin1String("offset")), qPrintable(result.error));
    QVERIFY(result.model.isEmpty());
}

void tst_MessageRewriter::resultIsStableWhenRewrittenTwice()
{
    // Rewriting the output again: the system message is no longer first, so nothing happens.
    const QByteArray body = chat({ msg("system", "S"), msg("user", "a"), msg("user", "b"), msg("user", "c"),
                                   msg("user", "d"), msg("user", "e") });
    const MessageRewriter::Result first = MessageRewriter::rewrite(body, RewriteOptions {});
    QCOMPARE(first.outcome, Outcome::Rewritten);
    const MessageRewriter::Result second = MessageRewriter::rewrite(first.body, RewriteOptions {});
    QCOMPARE(second.outcome, Outcome::NotApplicable);
    QCOMPARE(second.model, QStringLiteral("gpt-4o"));
}

void tst_MessageRewriter::appliesTo_data()
{
    QTest::addColumn<QByteArray>("method");
    QTest::addColumn<QString>("path");
    QTest::addColumn<bool>("applies");

    QTest::newRow("POST chat") << QByteArrayLiteral("POST") << QStringLiteral("/v1/chat/completions") << true;
    QTest::newRow("POST chat with query")
        << QByteArrayLiteral("POST") << QStringLiteral("/v1/chat/completions?api-version=2024-02-01") << true;
    QTest::newRow("POST chat trailing slash")
        << QByteArrayLiteral("POST") << QStringLiteral("/v1/chat/completions/") << true;
    QTest::newRow("POST chat trailing slash and query")
        << QByteArrayLiteral("POST") << QStringLiteral("/v1/chat/completions/?x=1") << true;
    QTest::newRow("POST azure deployment")
        << QByteArrayLiteral("POST") << QStringLiteral("/openai/deployments/x/chat/completions") << true;
    QTest::newRow("POST azure deployment with api-version")
        << QByteArrayLiteral("POST")
        << QStringLiteral("/openai/deployments/gpt4/chat/completions?api-version=1") << true;
    QTest::newRow("POST without /v1")
        << QByteArrayLiteral("POST") << QStringLiteral("/chat/completions") << true;
    QTest::newRow("GET chat") << QByteArrayLiteral("GET") << QStringLiteral("/v1/chat/completions") << false;
    QTest::newRow("PUT chat") << QByteArrayLiteral("PUT") << QStringLiteral("/v1/chat/completions") << false;
    QTest::newRow("POST completions")
        << QByteArrayLiteral("POST") << QStringLiteral("/v1/completions") << false;
    QTest::newRow("POST responses") << QByteArrayLiteral("POST") << QStringLiteral("/v1/responses") << false;
    QTest::newRow("POST xchat") << QByteArrayLiteral("POST") << QStringLiteral("/v1/xchat/completions")
                                << false;
    QTest::newRow("POST chat/completionsx")
        << QByteArrayLiteral("POST") << QStringLiteral("/v1/chat/completionsx") << false;
    QTest::newRow("POST below chat/completions")
        << QByteArrayLiteral("POST") << QStringLiteral("/v1/chat/completions/abc") << false;
    QTest::newRow("chat/completions only in the query")
        << QByteArrayLiteral("POST") << QStringLiteral("/v1/models?next=/chat/completions") << false;
    QTest::newRow("empty path") << QByteArrayLiteral("POST") << QString() << false;
}

void tst_MessageRewriter::appliesTo()
{
    QFETCH(QByteArray, method);
    QFETCH(QString, path);
    QFETCH(bool, applies);
    QCOMPARE(MessageRewriter::appliesTo(method, path), applies);
}

void tst_MessageRewriter::modelOf_data()
{
    QTest::addColumn<QByteArray>("body");
    QTest::addColumn<QString>("model");

    QTest::newRow("plain") << QByteArrayLiteral(R"({"model":"gpt-4o","input":"x"})")
                           << QStringLiteral("gpt-4o");
    QTest::newRow("after other members")
        << QByteArrayLiteral(R"({"z":[1,{"model":"inner"}],"model":"outer"})") << QStringLiteral("outer");
    QTest::newRow("escaped") << QByteArrayLiteral(R"({"model":"caf\u00e9\/x"})")
                             << QStringLiteral("caf\u00e9/x");
    QTest::newRow("nested only") << QByteArrayLiteral(R"({"x":{"model":"inner"}})") << QString();
    QTest::newRow("number") << QByteArrayLiteral(R"({"model":4})") << QString();
    QTest::newRow("missing") << QByteArrayLiteral("{}") << QString();
    QTest::newRow("array body") << QByteArrayLiteral(R"([{"model":"m"}])") << QString();
    QTest::newRow("invalid") << QByteArrayLiteral(R"({"model":"m",)") << QString();
    QTest::newRow("empty") << QByteArray() << QString();
}

void tst_MessageRewriter::modelOf()
{
    QFETCH(QByteArray, body);
    QFETCH(QString, model);
    QCOMPARE(MessageRewriter::modelOf(body), model);
}

QTEST_GUILESS_MAIN(tst_MessageRewriter)
#include "tst_messagerewriter.moc"
