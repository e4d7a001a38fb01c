using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Akka.TestKit.Xunit2;
using Continuity.Core.Fencing;
using Continuity.Core.Membership;
using Xunit;

namespace Continuity.Core.Tests.Fencing;

/// <summary>
/// The lease and the downing provider ask every member in view each second, lost members included (that is what they
/// find out). Their undelivered questions are expected; logged as dead letters they drowned the lines an operator needs
/// during a failure (a hundred an hour on the chaos lab).
/// </summary>
public sealed class UndeliveredLeaseMessagesSpecs() : TestKit(ConfigurationFactory.ParseString("akka.loglevel = INFO"))
{
    public static TheoryData<object> QuestionsToLostMembers => new()
    {
        new LeaseProtocol.Vouch(7),
        new LeaseProtocol.Revoke("akka.ssl.tcp://continuity@198.18.0.12:4053", 42),
        new DowningProtocol.ServingPrimaries(1),
    };

    [Theory]
    [MemberData(nameof(QuestionsToLostMembers))]
    public void A_question_to_a_member_that_is_gone_is_not_logged_as_a_dead_letter(object question)
    {
        var gone = CreateTestProbe();
        Watch(gone.Ref);
        Sys.Stop(gone.Ref);
        ExpectTerminated(gone.Ref);
        var deadLetters = CreateTestProbe();
        Sys.EventStream.Subscribe(deadLetters.Ref, typeof(DeadLetter));
        var suppressed = CreateTestProbe();
        Sys.EventStream.Subscribe(suppressed.Ref, typeof(SuppressedDeadLetter));

        gone.Ref.Tell(question);
        Assert.Equal(question, suppressed.ExpectMsg<SuppressedDeadLetter>().Message);
        gone.Ref.Tell("unexpected");
        Assert.Equal("unexpected", deadLetters.ExpectMsg<DeadLetter>().Message);
    }
}
