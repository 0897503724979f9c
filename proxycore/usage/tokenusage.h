// Token usage in upstream answers: read from JSON bodies and event streams, and the usage-only chunk
// that KeyRelay itself asked for taken out of a client's stream again.
#pragma once

#include <QByteArray>
#include <QtGlobal>

namespace keyrelay {

struct TokenUsage
{
    qint64 prompt = -1; ///< -1: not reported
    qint64 completion = -1;
    qint64 total = -1;
    qint64 cacheCreation = -1; ///< prompt tokens written to the cache (Anthropic), part of prompt
    qint64 cacheRead = -1; ///< prompt tokens read from the cache, part of prompt
};

/// Reads "usage" (Chat Completions: prompt/completion/total_tokens; Responses API: input/output_tokens,
/// also inside "response"; Anthropic Messages: input_tokens + cache_creation_input_tokens +
/// cache_read_input_tokens as the prompt) from a JSON body, or from the last event of @p data that has it
/// when @p eventStream (for a whole stream, StreamUsageTracker merges what several events say). Leaves
/// @p usage alone and returns false when there is none.
bool parseTokenUsage(const QByteArray &data, bool eventStream, TokenUsage *usage);

/// The token counts of an event stream, fed every byte as it passes: Chat Completions chunks with "usage"
/// (the last wins), the Responses API's "response.usage" ("usage":null in response.created is ignored),
/// Anthropic's message_start ("message.usage": the input counts) and message_delta ("usage": the output
/// count so far, and input counts that newer API versions repeat), each count as last reported. Holds at
/// most one incomplete event (an event longer than MaxEventBytes is skipped), and parses only events that
/// contain "usage".
class StreamUsageTracker
{
public:
    /// The longest SSE event held whole (here and by StreamUsageFilter); longer ones pass unread.
    static constexpr qsizetype MaxEventBytes = 256 * 1024;

    void feed(const QByteArray &chunk);
    /// The end of the stream: an unterminated last event is read as it is.
    void finish();
    TokenUsage usage() const;
    /// Whether any event reported a prompt, completion or total count.
    bool hasUsage() const;
    /// Bytes held of an incomplete event (at most MaxEventBytes between calls).
    qsizetype heldBytes() const { return m_held.size(); }

    /// The counts of one usage object as reported, -1 where absent.
    struct Counts
    {
        qint64 promptTokens = -1;
        qint64 completionTokens = -1;
        qint64 inputTokens = -1;
        qint64 outputTokens = -1;
        qint64 totalTokens = -1;
        qint64 cacheCreationInputTokens = -1;
        qint64 cacheReadInputTokens = -1;
        qint64 cachedTokens = -1; ///< prompt_tokens_details / input_tokens_details
    };

private:
    void takeEvent(const QByteArray &event);

    QByteArray m_held;
    bool m_skipping = false; ///< inside an event longer than MaxEventBytes: dropped up to its end
    Counts m_counts;
};

/// For a stream whose client did not ask for usage but got "stream_options.include_usage" added by
/// KeyRelay: passes every event through as it completes, except the extra usage-only chunk
/// ({"choices":[],"usage":{...}}), so the client's stream keeps the shape it asked for. Bytes of an
/// event that is not complete yet are held until it is (clients only act on whole events anyway).
class StreamUsageFilter
{
public:
    /// The bytes of @p data (and of earlier calls) that can go to the client now.
    QByteArray feed(const QByteArray &data);
    /// The end of the stream: whatever is still held (an unterminated last event goes out as it is).
    QByteArray finish();
    /// Usage-only chunks taken out so far.
    int removedEvents() const { return m_removed; }

    /// Whether one SSE event (its bytes up to the blank line) is a usage-only chat completion chunk.
    static bool isUsageOnlyEvent(const QByteArray &event);

private:
    QByteArray m_held;
    int m_removed = 0;
};

} // namespace keyrelay
