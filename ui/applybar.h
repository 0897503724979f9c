// The bottom row of a page whose edits are applied together (Settings, Providers): a message, "Unsaved
// changes", Revert and Apply. The page decides what applying and reverting mean.
#pragma once

#include <QWidget>

class QLabel;
class QPushButton;

namespace keyrelay {

class ApplyBar : public QWidget
{
    Q_OBJECT
public:
    /// @p applyText: the Apply button's text, with a mnemonic that is free on the page.
    explicit ApplyBar(const QString &applyText, QWidget *parent = nullptr);

    /// Shows "Unsaved changes" and enables Revert and Apply while @p pending. When edits begin, a success
    /// message ("Settings applied.") goes: it is about what was applied, not about the new edits.
    void setPending(bool pending);
    bool isPending() const { return m_pending; }
    /// "Unsaved changes" while there are some, else "".
    QString pendingText() const;

    /// A message beside the buttons; @p error shows it in red.
    void setMessage(const QString &text, bool error);
    QString messageText() const;
    /// The message when it is an error, else "".
    QString errorText() const;

    /// With edits pending: asks whether to apply or discard them (leaving the page, closing, quitting).
    /// Apply and Discard act through applyRequested() / revertRequested(). True when nothing is pending
    /// any more; false when the user cancelled or applying failed. @p question names what has changes.
    bool confirmDiscardOrApply(QWidget *parent, const QString &question, const QString &promptName);

    QPushButton *applyButton() const { return m_apply; }
    QPushButton *revertButton() const { return m_revert; }

Q_SIGNALS:
    void applyRequested();
    /// Revert was pressed; the message is cleared after the page reverted.
    void revertRequested();

private:
    QLabel *m_message;
    QLabel *m_pendingLabel;
    QPushButton *m_revert;
    QPushButton *m_apply;
    bool m_pending = false;
    bool m_error = false;
};

} // namespace keyrelay
