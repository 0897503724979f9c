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
};

/// Reads "usage" (Chat Completions: prompt/completion/total_tokens; Responses API: input/output_tokens,
/// also inside "response") from a JSON body, or from the last event of @p data that has it when
/// @p eventStream. Leaves @p usage alone and returns false when there is none.
bool parseTokenUsage(const QByteArray &data, bool eventStream, TokenUsage *usage);

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
