#include "noticebanner.h"

#include "settingsregistry.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QVBoxLayout>

namespace keyrelay {

namespace {
const char *const IdProperty = "noticeId";
} // namespace

NoticeBanner::NoticeBanner(QWidget *parent) : QFrame(parent), m_layout(new QVBoxLayout(this))
{
    setObjectName(QStringLiteral("noticeBanner"));
    m_layout->setContentsMargins(0, 0, 0, 0);
    m_layout->setSpacing(4);
    hide();
}

QWidget *NoticeBanner::entry(const QString &id) const
{
    for (int i = 0; i < m_layout->count(); ++i) {
        QWidget *widget = m_layout->itemAt(i)->widget();
        if (widget && widget->property(IdProperty).toString() == id)
            return widget;
    }
    return nullptr;
}

void NoticeBanner::setNotice(const QString &id, const QString &title, const QStringList &lines,
                             bool dismissible)
{
    delete entry(id);
    auto *frame = new QFrame(this);
    frame->setProperty(IdProperty, id);
    frame->setObjectName(QStringLiteral("notice-") + id);
    frame->setFrameShape(QFrame::StyledPanel);
    frame->setStyleSheet(QStringLiteral("QFrame#notice-%1 { background: #fff4d6; border: 1px solid #d9a400; }"
                                        " QLabel { color: #3d2e00; }")
                             .arg(id));
    auto *label = new QLabel(frame);
    label->setObjectName(QStringLiteral("noticeText"));
    label->setWordWrap(true);
    label->setTextInteractionFlags(Qt::TextSelectableByMouse);
    label->setText((QStringList { title } + lines).join(QLatin1Char('\n')));
    auto *row = new QHBoxLayout(frame);
    row->setContentsMargins(8, 6, 8, 6);
    row->addWidget(label, 1);
    if (dismissible) {
        auto *dismiss = new QPushButton(tr("Dismiss"), frame);
        dismiss->setObjectName(QStringLiteral("dismiss"));
        dismiss->setAccessibleName(tr("Dismiss: %1").arg(title));
        connect(dismiss, &QPushButton::clicked, this, [this, id] {
            removeNotice(id);
            Q_EMIT dismissed(id);
        });
        row->addWidget(dismiss, 0, Qt::AlignTop);
    }
    m_layout->addWidget(frame);
    show();
}

void NoticeBanner::removeNotice(const QString &id)
{
    QWidget *widget = entry(id);
    if (!widget)
        return;
    m_layout->removeWidget(widget);
    widget->deleteLater();
    setVisible(m_layout->count() > 0);
}

bool NoticeBanner::hasNotice(const QString &id) const
{
    return entry(id) != nullptr;
}

QStringList NoticeBanner::noticeIds() const
{
    QStringList ids;
    for (int i = 0; i < m_layout->count(); ++i) {
        if (QWidget *widget = m_layout->itemAt(i)->widget())
            ids << widget->property(IdProperty).toString();
    }
    return ids;
}

QString NoticeBanner::noticeText(const QString &id) const
{
    const QWidget *widget = entry(id);
    const auto *label = widget ? widget->findChild<QLabel *>(QStringLiteral("noticeText")) : nullptr;
    return label ? label->text() : QString();
}

void NoticeBanner::showSettingsProblems(const SettingsRegistry &settings)
{
    const QList<IgnoredSetting> ignored = settings.ignoredSettings();
    const QStringList fileProblems = settings.fileProblems();
    if (ignored.isEmpty() && fileProblems.isEmpty()) {
        removeNotice(settingsProblemsId());
        return;
    }
    QStringList lines;
    for (const IgnoredSetting &setting : ignored) {
        const QString kept = setting.kept.isEmpty() ? tr("(empty)") : setting.kept;
        const QString why = setting.why.isEmpty() ? QString() : QStringLiteral(" (%1)").arg(setting.why);
        if (setting.line > 0)
            lines << tr("• Line %1: %2 = \"%3\" is not valid%4; KeyRelay uses %5 instead.")
                         .arg(setting.line)
                         .arg(setting.name, setting.value, why, kept);
        else
            lines << tr("• %1 = \"%2\" is not valid%3; KeyRelay uses %4 instead.")
                         .arg(setting.name, setting.value, why, kept);
    }
    for (const QString &problem : fileProblems)
        lines << QStringLiteral("• ") + problem;
    if (!settings.damagedCopy().isEmpty())
        lines
            << tr("The file as it was is kept in %1. Correct the values on the Settings page or in the file.")
                   .arg(settings.damagedCopy());
    const QString title = ignored.isEmpty()
        ? tr("There are problems with the settings file %1:").arg(settings.fileName())
        : tr("%n setting(s) in %1 could not be used and were ignored:", nullptr, int(ignored.size()))
              .arg(settings.fileName());
    setNotice(settingsProblemsId(), title, lines, true);
}

} // namespace keyrelay
