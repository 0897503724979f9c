// Notices at the top of the window that stay until they are dealt with: settings that were ignored, keys
// that are in memory only.
#pragma once

#include <QFrame>
#include <QStringList>

class QVBoxLayout;

namespace keyrelay {

class SettingsRegistry;

/// A list of notices, each with a title and lines. A dismissible one has a "Dismiss" button; one about data
/// at risk has none and goes only when its cause does (removeNotice()). Hidden while empty.
class NoticeBanner : public QFrame
{
    Q_OBJECT
public:
    explicit NoticeBanner(QWidget *parent = nullptr);

    /// Shows the notice @p id, or replaces its text.
    void setNotice(const QString &id, const QString &title, const QStringList &lines, bool dismissible);
    void removeNotice(const QString &id);
    bool hasNotice(const QString &id) const;
    QStringList noticeIds() const;
    /// The notice's title and lines as shown, one per line ("" when there is none).
    QString noticeText(const QString &id) const;

    /// The notice id of showSettingsProblems().
    static QString settingsProblemsId() { return QStringLiteral("settings"); }
    /// Every setting of @p settings' file that was ignored, with its line, the value found and the value
    /// used instead; problems with the whole file; where the file was kept. Dismissible. Nothing when the
    /// file had no problem.
    void showSettingsProblems(const SettingsRegistry &settings);

Q_SIGNALS:
    void dismissed(const QString &id);

private:
    QWidget *entry(const QString &id) const;

    QVBoxLayout *m_layout;
};

} // namespace keyrelay
