// Unit tests of token counts and key verdicts for providers besides OpenAI: Anthropic's Messages API bodies
// and event streams (parseTokenUsage, StreamUsageTracker, fed however the stream is cut), the Responses API
// and Chat Completions streams through the same tracker, and KeyPool::classify for Anthropic's error bodies.
#include "keypool.h"
#include "tokenusage.h"

#include <QtTest>

using namespace keyrelay;

namespace {

/// A realistic Anthropic Messages stream: the input counts come first (message_start), the output count
/// last (message_delta), with a ping and text deltas in between.
const QByteArray AnthropicStream
    = "event: message_start\n"
      R"(data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message",)"
      R"("role":"assistant","content":[],"model":"claude-sonnet-4-20250514","stop_reason":null,)"
      R"("stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,)"
      R"("cache_read_input_tokens":10,"output_tokens":1}}})"
      "\n\n"
      "event: content_block_start\n"
      R"(data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"
      "\n\n"
      "event: ping\n"
      R"(data: {"type": "ping"})"
      "\n\n"
      "event: content_block_delta\n"
      R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}})"
      "\n\n"
      "event: content_block_delta\n"
      R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta",)"
      "\"text\":\"! The \\\"usage\\\": {\\\"output_tokens\\\": 99} is only text\"}}" // not raw: moc misreads
                                                                                     // a backslash in one
      "\n\n"
      "event: content_block_stop\n"
      R"(data: {"type":"content_block_stop","index":0})"
      "\n\n"
      "event: message_delta\n"
      R"(data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},)"
      R"("usage":{"output_tokens":15}})"
      "\n\n"
      "event: message_stop\n"
      R"(data: {"type":"message_stop"})"
      "\n\n";

/// A newer Anthropic stream whose message_delta repeats (and corrects) the input counts.
const QByteArray AnthropicStreamDeltaWithInput
    = "event: message_start\n"
      R"(data: {"type":"message_start","message":{"id":"msg_02","type":"message","role":"assistant",)"
      R"("content":[],"model":"claude-sonnet-4-20250514","usage":{"input_tokens":25,)"
      R"("cache_creation_input_tokens":0,"cache_read_input_tokens":10,"output_tokens":1}}})"
      "\n\n"
      "event: content_block_delta\n"
      R"(data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}})"
      "\n\n"
      "event: message_delta\n"
      R"(data: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"input_tokens":30,)"
      R"("cache_creation_input_tokens":5,"cache_read_input_tokens":12,"output_tokens":20}})"
      "\n\n"
      "event: message_stop\n"
      R"(data: {"type":"message_stop"})"
      "\n\n";

/// A Responses API stream: "usage":null in response.created and response.in_progress, the counts in
/// response.completed.
const QByteArray ResponsesStream
    = "event: response.created\n"
      R"(data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response",)"
      R"("status":"in_progress","output":[],"usage":null}})"
      "\n\n"
      "event: response.in_progress\n"
      R"(data: {"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_1",)"
      R"("status":"in_progress","usage":null}})"
      "\n\n"
      "event: response.output_text.delta\n"
      R"(data: {"type":"response.output_text.delta","sequence_number":2,"item_id":"msg_1",)"
      R"("output_index":0,"content_index":0,"delta":"Hi"})"
      "\n\n"
      "event: response.completed\n"
      R"(data: {"type":"response.completed","sequence_number":3,"response":{"id":"resp_1",)"
      R"("status":"completed","usage":{"input_tokens":11,"input_tokens_details":{"cached_tokens":4},)"
      R"("output_tokens":22,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":33}}})"
      "\n\n";

/// A Chat Completions stream with the usage-only chunk (stream_options.include_usage).
const QByteArray ChatStream
    = R"(data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":)"
      R"("assistant","content":""}}],"usage":null})"
      "\n\n"
      R"(data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"}}],)"
      R"("usage":null})"
      "\n\n"
      R"(data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},)"
      R"("finish_reason":"stop"}],"usage":null})"
      "\n\n"
      R"(data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":9,)"
      R"("completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":3}}})"
      "\n\n"
      "data: [DONE]\n\n";

QByteArray withCrlf(QByteArray stream)
{
    return stream.replace("\n", "\r\n");
}

/// An Anthropic error body.
QByteArray anthropicError(const QByteArray &type, const QByteArray &message)
{
    return R"({"type":"error","error":{"type":")" + type + R"(","message":")" + message + R"("}})";
}

/// The tracker fed @p stream in pieces of @p size bytes (the whole stream at once for 0).
StreamUsageTracker fedInPieces(const QByteArray &stream, qsizetype size)
{
    StreamUsageTracker tracker;
    if (size <= 0)
        size = stream.size();
    for (qsizetype at = 0; at < stream.size(); at += size)
        tracker.feed(stream.mid(at, size));
    tracker.finish();
    return tracker;
}

QString describe(const TokenUsage &usage)
{
    return QStringLiteral("prompt %1 completion %2 total %3 cacheCreation %4 cacheRead %5")
        .arg(usage.prompt)
        .arg(usage.completion)
        .arg(usage.total)
        .arg(usage.cacheCreation)
        .arg(usage.cacheRead);
}

QString describe(const StreamUsageTracker &tracker)
{
    return (tracker.hasUsage() ? QStringLiteral("has usage: ") : QStringLiteral("no usage: "))
        + describe(tracker.usage());
}

QString expected(bool found, qint64 prompt, qint64 completion, qint64 total, qint64 cacheCreation,
                 qint64 cacheRead)
{
    TokenUsage usage;
    usage.prompt = prompt;
    usage.completion = completion;
    usage.total = total;
    usage.cacheCreation = cacheCreation;
    usage.cacheRead = cacheRead;
    return (found ? QStringLiteral("has usage: ") : QStringLiteral("no usage: ")) + describe(usage);
}

void addUsageColumns()
{
    QTest::addColumn<bool>("found");
    QTest::addColumn<qint64>("prompt");
    QTest::addColumn<qint64>("completion");
    QTest::addColumn<qint64>("total");
    QTest::addColumn<qint64>("cacheCreation");
    QTest::addColumn<qint64>("cacheRead");
}

} // namespace

class tst_ProviderUsage : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void parseBody_data();
    void parseBody();
    void trackStream_data();
    void trackStream();
    void trackStreamSplitAtEveryByte_data();
    void trackStreamSplitAtEveryByte();
    void oversizedEventIsSkipped_data();
    void oversizedEventIsSkipped();
    void classify_data();
    void classify();
};

void tst_ProviderUsage::parseBody_data()
{
    QTest::addColumn<QByteArray>("body");
    addUsageColumns();

    QTest::newRow("Anthropic message with cache counts")
        << QByteArrayLiteral(
               R"({"id":"msg_01","type":"message","role":"assistant","content":[{"type":"text",)"
               R"("text":"Hi"}],"model":"claude-sonnet-4-20250514","stop_reason":"end_turn",)"
               R"("stop_sequence":null,"usage":{"input_tokens":100,"cache_creation_input_tokens":)"
               R"(20,"cache_read_input_tokens":300,"output_tokens":50}})")
        << true << qint64(420) << qint64(50) << qint64(470) << qint64(20) << qint64(300);
    QTest::newRow("Anthropic message without cache counts")
        << QByteArrayLiteral(
               R"({"id":"msg_01","type":"message","usage":{"input_tokens":7,"output_tokens":3}})")
        << true << qint64(7) << qint64(3) << qint64(10) << qint64(-1) << qint64(-1);
    QTest::newRow("Anthropic message, cache read only")
        << QByteArrayLiteral(R"({"type":"message","usage":{"cache_read_input_tokens":8,"output_tokens":2}})")
        << true << qint64(8) << qint64(2) << qint64(10) << qint64(-1) << qint64(8);
    QTest::newRow("Anthropic message, output only")
        << QByteArrayLiteral(R"({"type":"message","usage":{"output_tokens":2}})") << false << qint64(-1)
        << qint64(-1) << qint64(-1) << qint64(-1) << qint64(-1);
    QTest::newRow("chat body: prompt_tokens counts the cached ones already")
        << QByteArrayLiteral(
               R"({"object":"chat.completion","usage":{"prompt_tokens":12,"completion_tokens":5,)"
               R"("total_tokens":17,"prompt_tokens_details":{"cached_tokens":6},)"
               R"("cache_read_input_tokens":6}})")
        << true << qint64(12) << qint64(5) << qint64(17) << qint64(-1) << qint64(6);
    QTest::newRow("Responses API body: input_tokens counts the cached ones already")
        << QByteArrayLiteral(R"({"object":"response","usage":{"input_tokens":10,"input_tokens_details":)"
                             R"({"cached_tokens":4},"output_tokens":20,"total_tokens":30}})")
        << true << qint64(10) << qint64(20) << qint64(30) << qint64(-1) << qint64(4);
    QTest::newRow("Anthropic error") << anthropicError("overloaded_error", "Overloaded") << false
                                     << qint64(-1) << qint64(-1) << qint64(-1) << qint64(-1) << qint64(-1);
}

void tst_ProviderUsage::parseBody()
{
    QFETCH(QByteArray, body);
    QFETCH(bool, found);
    QFETCH(qint64, prompt);
    QFETCH(qint64, completion);
    QFETCH(qint64, total);
    QFETCH(qint64, cacheCreation);
    QFETCH(qint64, cacheRead);

    TokenUsage usage;
    const bool parsed = parseTokenUsage(body, false, &usage);
    QCOMPARE((parsed ? QStringLiteral("has usage: ") : QStringLiteral("no usage: ")) + describe(usage),
             expected(found, prompt, completion, total, cacheCreation, cacheRead));
}

void tst_ProviderUsage::trackStream_data()
{
    QTest::addColumn<QByteArray>("stream");
    addUsageColumns();

    QTest::newRow("Anthropic") << AnthropicStream << true << qint64(35) << qint64(15) << qint64(50)
                               << qint64(0) << qint64(10);
    QTest::newRow("Anthropic, CRLF") << withCrlf(AnthropicStream) << true << qint64(35) << qint64(15)
                                     << qint64(50) << qint64(0) << qint64(10);
    QTest::newRow("Anthropic, message_delta with input counts")
        << AnthropicStreamDeltaWithInput << true << qint64(47) << qint64(20) << qint64(67) << qint64(5)
        << qint64(12);
    QTest::newRow("Anthropic, ended before message_delta")
        << AnthropicStream.left(AnthropicStream.indexOf("event: message_delta")) << true << qint64(35)
        << qint64(1) << qint64(36) << qint64(0) << qint64(10);
    QTest::newRow("Anthropic, no blank line after the last event")
        << AnthropicStream.left(AnthropicStream.indexOf("event: message_stop") - 2) << true << qint64(35)
        << qint64(15) << qint64(50) << qint64(0) << qint64(10);
    QTest::newRow("Responses API") << ResponsesStream << true << qint64(11) << qint64(22) << qint64(33)
                                   << qint64(-1) << qint64(4);
    QTest::newRow("Responses API, CRLF") << withCrlf(ResponsesStream) << true << qint64(11) << qint64(22)
                                         << qint64(33) << qint64(-1) << qint64(4);
    QTest::newRow("Responses API, usage null after the counts")
        << ResponsesStream + ResponsesStream.left(ResponsesStream.indexOf("event: response.in_progress"))
        << true << qint64(11) << qint64(22) << qint64(33) << qint64(-1) << qint64(4);
    QTest::newRow("Chat Completions")
        << ChatStream << true << qint64(9) << qint64(12) << qint64(21) << qint64(-1) << qint64(3);
    QTest::newRow("Chat Completions, CRLF, no space after data:")
        << withCrlf(ChatStream).replace("data: ", "data:") << true << qint64(9) << qint64(12) << qint64(21)
        << qint64(-1) << qint64(3);
    QTest::newRow("Chat Completions, the last usage wins") << QByteArrayLiteral(
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,"
        "\"total_tokens\":2}}\n\n"
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":6}}\n\n"
        "data: {\"choices\":[],\"usage\":null}\n\n"
        "data: [DONE]\n\n") << true << qint64(5) << qint64(6)
                                                           << qint64(11) << qint64(-1) << qint64(-1);
    QTest::newRow("Chat Completions without usage")
        << ChatStream.left(ChatStream.indexOf("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\","
                                              "\"choices\":[],"))
        << false << qint64(-1) << qint64(-1) << qint64(-1) << qint64(-1) << qint64(-1);
    QTest::newRow("usage in a comment or an event name only")
        << QByteArrayLiteral(": \"usage\" {\"usage\":{\"prompt_tokens\":1}}\n\n"
                             "event: \"usage\"\ndata: {\"type\":\"ping\"}\n\n")
        << false << qint64(-1) << qint64(-1) << qint64(-1) << qint64(-1) << qint64(-1);
    QTest::newRow("empty") << QByteArray() << false << qint64(-1) << qint64(-1) << qint64(-1) << qint64(-1)
                           << qint64(-1);
}

void tst_ProviderUsage::trackStream()
{
    QFETCH(QByteArray, stream);
    QFETCH(bool, found);
    QFETCH(qint64, prompt);
    QFETCH(qint64, completion);
    QFETCH(qint64, total);
    QFETCH(qint64, cacheCreation);
    QFETCH(qint64, cacheRead);

    const QString want = expected(found, prompt, completion, total, cacheCreation, cacheRead);
    for (const qsizetype size : { 0, 1, 2, 3, 5, 64, 1000 }) {
        const StreamUsageTracker tracker = fedInPieces(stream, size);
        QVERIFY2(describe(tracker) == want,
                 qPrintable(QStringLiteral("pieces of %1 bytes: %2").arg(size).arg(describe(tracker))));
        QCOMPARE(tracker.heldBytes(), 0);
    }
}

void tst_ProviderUsage::trackStreamSplitAtEveryByte_data()
{
    QTest::addColumn<QByteArray>("stream");
    addUsageColumns();

    QTest::newRow("Anthropic") << AnthropicStream << true << qint64(35) << qint64(15) << qint64(50)
                               << qint64(0) << qint64(10);
    QTest::newRow("Anthropic, CRLF") << withCrlf(AnthropicStream) << true << qint64(35) << qint64(15)
                                     << qint64(50) << qint64(0) << qint64(10);
    QTest::newRow("Anthropic, message_delta with input counts")
        << withCrlf(AnthropicStreamDeltaWithInput) << true << qint64(47) << qint64(20) << qint64(67)
        << qint64(5) << qint64(12);
    QTest::newRow("Responses API") << ResponsesStream << true << qint64(11) << qint64(22) << qint64(33)
                                   << qint64(-1) << qint64(4);
}

/// Every cut of the stream into two reads, and into three around each byte (a separator split twice).
void tst_ProviderUsage::trackStreamSplitAtEveryByte()
{
    QFETCH(QByteArray, stream);
    QFETCH(bool, found);
    QFETCH(qint64, prompt);
    QFETCH(qint64, completion);
    QFETCH(qint64, total);
    QFETCH(qint64, cacheCreation);
    QFETCH(qint64, cacheRead);

    const QString want = expected(found, prompt, completion, total, cacheCreation, cacheRead);
    for (qsizetype cut = 0; cut <= stream.size(); ++cut) {
        StreamUsageTracker two;
        two.feed(stream.left(cut));
        two.feed(stream.mid(cut));
        QVERIFY2(describe(two) == want,
                 qPrintable(QStringLiteral("cut at %1: %2").arg(cut).arg(describe(two))));
        QCOMPARE(two.heldBytes(), 0);

        StreamUsageTracker three;
        three.feed(stream.left(cut));
        three.feed(stream.mid(cut, 1));
        three.feed(stream.mid(cut + 1));
        QVERIFY2(describe(three) == want,
                 qPrintable(QStringLiteral("one byte at %1: %2").arg(cut).arg(describe(three))));
    }
}

void tst_ProviderUsage::oversizedEventIsSkipped_data()
{
    QTest::addColumn<QByteArray>("separator");
    QTest::addColumn<qsizetype>("pieceSize");

    for (const QByteArray &separator : { QByteArrayLiteral("\n"), QByteArrayLiteral("\r\n") }) {
        for (const qsizetype size : { qsizetype(1), qsizetype(7), qsizetype(4096), qsizetype(65536) }) {
            const QByteArray name
                = (separator == "\n" ? "LF" : "CRLF") + QByteArray(", pieces of ") + QByteArray::number(size);
            QTest::newRow(name.constData()) << separator << size;
        }
    }
}

/// An event longer than MaxEventBytes is skipped (its usage too), never held whole; what follows counts.
void tst_ProviderUsage::oversizedEventIsSkipped()
{
    QFETCH(QByteArray, separator);
    QFETCH(qsizetype, pieceSize);

    const QByteArray blank = separator + separator;
    const QByteArray huge = "event: message_delta" + separator
        + R"(data: {"type":"message_delta","usage":{"output_tokens":999,"cache_creation_input_tokens":777},)"
        + "\"padding\":\"" + QByteArray(StreamUsageTracker::MaxEventBytes + 4000, 'x') + "\"}" + blank;
    const QByteArray stream = withCrlf(AnthropicStream.left(AnthropicStream.indexOf("event: message_delta")))
                                  .replace("\r\n", separator)
        + huge
        + withCrlf(AnthropicStream.mid(AnthropicStream.indexOf("event: message_delta")))
              .replace("\r\n", separator);

    StreamUsageTracker tracker;
    qsizetype mostHeld = 0;
    for (qsizetype at = 0; at < stream.size(); at += pieceSize) {
        tracker.feed(stream.mid(at, pieceSize));
        mostHeld = qMax(mostHeld, tracker.heldBytes());
    }
    QVERIFY2(mostHeld <= StreamUsageTracker::MaxEventBytes, qPrintable(QString::number(mostHeld)));
    QCOMPARE(tracker.heldBytes(), 0);
    tracker.finish();
    QCOMPARE(describe(tracker), expected(true, 35, 15, 50, 0, 10));

    // The oversized event last, unterminated: finish() does not read it either.
    StreamUsageTracker cut;
    cut.feed(stream.left(stream.indexOf(huge)));
    cut.feed(huge.chopped(blank.size()));
    QVERIFY(cut.heldBytes() <= StreamUsageTracker::MaxEventBytes);
    cut.finish();
    QCOMPARE(describe(cut), expected(true, 35, 1, 36, 0, 10));
}

void tst_ProviderUsage::classify_data()
{
    QTest::addColumn<int>("status");
    QTest::addColumn<QByteArray>("body");
    QTest::addColumn<int>("verdict");
    QTest::addColumn<QString>("reason");

    QTest::newRow("Anthropic 401 authentication_error")
        << 401 << anthropicError("authentication_error", "invalid x-api-key") << int(KeyVerdict::Invalid)
        << QStringLiteral("401: invalid x-api-key");
    QTest::newRow("Anthropic 403 permission_error")
        << 403
        << anthropicError("permission_error",
                          "Your API key does not have permission to use the specified resource.")
        << int(KeyVerdict::Invalid)
        << QStringLiteral("403: Your API key does not have permission to use the specified resource.");
    QTest::newRow("Anthropic 403 permission_error about the region")
        << 403 << anthropicError("permission_error", "Access from your region is not supported.")
        << int(KeyVerdict::NotKeysFault) << QStringLiteral("403: Access from your region is not supported.");
    QTest::newRow("Anthropic 403 permission_error about the model")
        << 403 << anthropicError("permission_error", "Your organization does not have access to this model.")
        << int(KeyVerdict::NotKeysFault)
        << QStringLiteral("403: Your organization does not have access to this model.");
    QTest::newRow("Anthropic 429 rate_limit_error")
        << 429
        << anthropicError("rate_limit_error",
                          "This request would exceed the rate limit for your organization "
                          "of 50,000 input tokens per minute.")
        << int(KeyVerdict::RateLimited)
        << QStringLiteral("429: This request would exceed the rate limit for your organization of 50,000 "
                          "input tokens per minute.");
    QTest::newRow("Anthropic 529 overloaded_error")
        << 529 << anthropicError("overloaded_error", "Overloaded") << int(KeyVerdict::NotKeysFault)
        << QStringLiteral("529: Overloaded");
    QTest::newRow("Anthropic 500 api_error")
        << 500 << anthropicError("api_error", "Internal server error") << int(KeyVerdict::NotKeysFault)
        << QStringLiteral("500: Internal server error");
    QTest::newRow("Anthropic 400 credit balance too low")
        << 400
        << anthropicError("invalid_request_error",
                          "Your credit balance is too low to access the Anthropic API. Please go to Plans & "
                          "Billing to upgrade or purchase credits.")
        << int(KeyVerdict::Exhausted)
        << QStringLiteral(
               "400: Your credit balance is too low to access the Anthropic API. Please go to Plans "
               "& Billing to upgrade or purchase credits.");
    QTest::newRow("Anthropic 400 invalid_request_error otherwise")
        << 400 << anthropicError("invalid_request_error", "max_tokens: 100000 > 64000, the maximum allowed")
        << int(KeyVerdict::NotKeysFault)
        << QStringLiteral("400: max_tokens: 100000 > 64000, the maximum allowed");
    QTest::newRow("Anthropic 529 as an event stream")
        << 529
        << QByteArrayLiteral(
               "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
               "\"message\":\"Overloaded\"}}\n\n")
        << int(KeyVerdict::NotKeysFault) << QStringLiteral("529: Overloaded");

    QTest::newRow("OpenAI 401 invalid_api_key")
        << 401
        << QByteArrayLiteral(
               R"({"error":{"message":"Incorrect API key provided","type":"invalid_request_error",)"
               R"("param":null,"code":"invalid_api_key"}})")
        << int(KeyVerdict::Invalid) << QStringLiteral("401 invalid_api_key: Incorrect API key provided");
    QTest::newRow("OpenAI 429 insufficient_quota")
        << 429
        << QByteArrayLiteral(R"({"error":{"message":"You exceeded your current quota","type":)"
                             R"("insufficient_quota","param":null,"code":"insufficient_quota"}})")
        << int(KeyVerdict::Exhausted)
        << QStringLiteral("429 insufficient_quota: You exceeded your current quota");
    QTest::newRow("OpenAI 400 context length")
        << 400
        << QByteArrayLiteral(
               R"({"error":{"message":"The maximum context length is 128000 tokens",)"
               R"("type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}})")
        << int(KeyVerdict::NotKeysFault)
        << QStringLiteral("400 context_length_exceeded: The maximum context length is 128000 tokens");
}

void tst_ProviderUsage::classify()
{
    QFETCH(int, status);
    QFETCH(QByteArray, body);
    QFETCH(int, verdict);
    QFETCH(QString, reason);

    const UpstreamVerdict result = KeyPool::classify(status, body);
    QCOMPARE(int(result.verdict), verdict);
    QCOMPARE(result.reason, reason);
}

QTEST_GUILESS_MAIN(tst_ProviderUsage)
#include "tst_providerusage.moc"
