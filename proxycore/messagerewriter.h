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
    };

    /// True for POST requests to .../chat/completions.
    static bool appliesTo(const QByteArray &method, const QString &path);

    /// Moves a leading system message so that exactly @p options.depth messages follow it, when the
    /// conversation has more than @p options.threshold messages: [S,a,b,c,d] -> [a,S,b,c,d].
    /// Only the order of the array's elements changes: every other byte of the body (key order,
    /// number spelling, whitespace, escapes) is kept as it was.
    static Result rewrite(const QByteArray &body, const RewriteOptions &options);

    /// The "model" member of a JSON object body, or an empty string.
    static QString modelOf(const QByteArray &body);
};

} // namespace keyrelay
