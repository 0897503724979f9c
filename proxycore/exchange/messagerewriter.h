// The built-in body rule: keep a long conversation's system message close to the end.
#pragma once

#include <QByteArray>
#include <QString>

namespace keyrelay {

struct RewriteOptions
{
    bool enabled = true;
    int threshold = 4; ///< rewrite only when there are more messages than this
    int depth = 3; ///< how many messages follow the system message afterwards
    /// Streamed requests that do not ask for usage get "stream_options":{"include_usage":true}, so
    /// that KeyRelay can count their tokens (StreamUsageFilter takes the extra chunk out again).
    bool requestStreamUsage = false;
};

class MessageRewriter
{
public:
    enum class Outcome {
        NotApplicable, ///< not JSON we rewrite (no messages array, no leading system message, too short)
        Rewritten, ///< body changed
        InvalidJson, ///< the body is not valid JSON; error() says why
    };

    struct Result
    {
        Outcome outcome = Outcome::NotApplicable;
        QByteArray body; ///< the new body when Rewritten, else empty
        QString model; ///< the request's "model", when the body is a JSON object
        QString error;
        bool reordered = false; ///< the system message was moved
        bool usageRequested = false; ///< stream_options.include_usage was added (or set to true)
    };

    /// True for POST requests to .../chat/completions.
    static bool appliesTo(const QByteArray &method, const QString &path);

    /// Moves a leading system message so that exactly @p options.depth messages follow it, when the
    /// conversation has more than @p options.threshold messages: [S,a,b,c,d] -> [a,S,b,c,d].
    /// Only the order of the array's elements changes: every other byte of the body (key order,
    /// number spelling, whitespace, escapes) is kept as it was.
    static Result rewrite(const QByteArray &body, const RewriteOptions &options);

    /// Adds "stream_options":{"include_usage":true} to a JSON object @p body that has "stream": true
    /// and does not already ask for usage; every other byte is kept. Returns false (and leaves @p body)
    /// when nothing needs adding or the body is not such an object.
    static bool requestStreamUsage(QByteArray *body);

    /// The "model" member of a JSON object body, or an empty string.
    static QString modelOf(const QByteArray &body);
    /// Replaces the string value of the top-level "model" member of the JSON object @p body with
    /// @p model; every other byte stays as it was. False (and @p body unchanged) when the body is not
    /// a JSON object with a string "model".
    static bool replaceModel(QByteArray *body, const QString &model);
};

} // namespace keyrelay
