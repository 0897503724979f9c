#include "applybar.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QMessageBox>
#include <QPushButton>

namespace keyrelay {

ApplyBar::ApplyBar(const QString &applyText, QWidget *parent) : QWidget(parent)
{
    m_message = new QLabel(this);
    m_message->setWordWrap(true);
    m_message->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_pendingLabel = new QLabel(tr("Unsaved changes"), this);
    m_pendingLabel->setStyleSheet(QStringLiteral("font-weight: bold;"));
    m_pendingLabel->setToolTip(tr("Apply stores and uses the changes; Revert drops them"));
    m_pendingLabel->hide();
    m_revert = new QPushButton(tr("Re&vert"), this);
    m_revert->setToolTip(tr("Drop the changes not applied yet"));
    m_apply = new QPushButton(applyText, this);
    m_apply->setToolTip(tr("Store the changes and use them at once"));
    connect(m_apply, &QPushButton::clicked, this, &ApplyBar::applyRequested);
    connect(m_revert, &QPushButton::clicked, this, [this] {
        Q_EMIT revertRequested();
        setMessage(QString(), false);
    });
    auto *layout = new QHBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(m_message, 1);
    layout->addWidget(m_pendingLabel);
    layout->addWidget(m_revert);
    layout->addWidget(m_apply);
}

void ApplyBar::setPending(bool pending)
{
    if (pending && !m_pending && !m_error)
        setMessage(QString(), false);
    m_pending = pending;
    m_pendingLabel->setVisible(pending);
    m_apply->setEnabled(pending);
    m_revert->setEnabled(pending);
}

bool ApplyBar::confirmDiscardOrApply(QWidget *parent, const QString &question, const QString &promptName)
{
    if (!m_pending)
        return true;
    QMessageBox box(QMessageBox::Question, tr("KeyRelay"), question,
                    QMessageBox::Apply | QMessageBox::Discard | QMessageBox::Cancel, parent);
    box.setInformativeText(tr("Apply them now, or discard them?"));
    box.setDefaultButton(QMessageBox::Apply);
    box.setObjectName(promptName);
    switch (box.exec()) {
    case QMessageBox::Apply:
        Q_EMIT applyRequested();
        return !m_pending; // stored, even if the proxy could not start with them (the window says so)
    case QMessageBox::Discard:
        Q_EMIT revertRequested();
        setMessage(QString(), false);
        return true;
    default:
        return false;
    }
}

QString ApplyBar::pendingText() const
{
    return m_pending ? m_pendingLabel->text() : QString();
}

void ApplyBar::setMessage(const QString &text, bool error)
{
    m_message->setText(text);
    m_error = error;
    m_message->setStyleSheet(error ? QStringLiteral("color: #c02020;") : QString());
}

QString ApplyBar::messageText() const
{
    return m_message->text();
}

QString ApplyBar::errorText() const
{
    return m_error ? m_message->text() : QString();
}

} // namespace keyrelay
